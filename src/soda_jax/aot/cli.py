"""``soda compile MODEL --tpu v5p-256``: compile a run's training step for a TPU slice on this host.

    soda compile soda-135m --tpu v5p-32                         # SODA's final recipe: seq 4096, batch 512
    soda compile soda-4b --tpu v5p-256 --parallelism model=2 --json out.json
    soda compile soda-4b --tpu v5p-8 --batch 512                # reports "does not fit", exit 1
    soda compile soda-4b --tpu v5p-8 --decode --batch 64 --seq 4096   # the inference decode step, KV cache

Prints per-chip HBM (parameters, optimizer state, temporaries, code) against the chip's HBM less
the margin, and training FLOPs per token from the compiled program (loop-corrected) against the
analytic count. With ``--decode``, the inference decode step instead (one new token for each of
``--batch`` sequences, a KV cache of ``--seq`` positions): parameters, KV cache and temporaries per
chip. Needs the TPU compiler: ``pip install -e '.[tpu-aot]'``; no TPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from soda_jax import fileio
from soda_jax.audio.vocab import SODA_VOCAB_SIZE
from soda_jax.execution.tpu_slices import tpu_slice
from soda_jax.models.catalogue import CATALOGUE, model_shape
from soda_jax.training.config import TrainConfig
from soda_jax.training.parallelism import ParallelismConfig
from soda_jax.training.recipe import SODA_BATCH_SIZE, SODA_SEQ_LEN, TrainRecipe


def parse_parallelism(text: str | None) -> ParallelismConfig:
    """``"model=2,replica=1"`` -> `ParallelismConfig` (unnamed fields keep their defaults)."""
    if not text:
        return ParallelismConfig()
    fields = {f.name for f in dataclasses.fields(ParallelismConfig)}
    values: dict[str, Any] = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in fields or not value:
            raise ValueError(f"--parallelism: expected name=value with name in {sorted(fields)}, got {item!r}")
        values[name] = (
            value.strip().lower() in ("1", "true", "yes") if name in ("fsdp", "shard_vocab_parameters") else int(value)
        )
    return ParallelismConfig(**values)


def train_config_for(model: str, *, batch: int, seq: int, parallelism: ParallelismConfig, **options) -> TrainConfig:
    """The `TrainConfig` `default_train` would build for catalogue ``model`` (SODA's final recipe
    at ``batch`` x ``seq``); the data config is unused by compilation."""
    from soda_jax.data.mixture import MixtureSpec

    recipe = TrainRecipe(seq_len=seq, batch_size=batch)
    return TrainConfig(
        data=MixtureSpec(components={}, train_weights={}),
        model=model_shape(model),
        output_path="aot",
        recipe=recipe,
        parallelism=parallelism,
        **options,
    )


def format_report(report: dict) -> str:
    memory = report["memory"]
    lines = [
        f"{report['model_name']}: batch {report['batch_size']} x seq {report['seq_len']} on {report['num_slices']} x "
        f"{report['tpu']} ({report['chips']} chips, {report['hosts']} hosts, mesh {report['mesh']}, "
        f"{report['layer_loop']} layers, {report['attention']} attention)",
        f"  compiled in {report['compile_seconds']} s",
        f"  per chip: parameters {memory['parameters_gib']:.2f} GiB"
        f" + optimizer state {memory['optimizer_state_gib']:.2f} (arguments {memory['arguments_gib']:.2f})"
        f" + new outputs {memory['outputs_gib'] - memory['aliased_gib']:.2f}"
        f" + temporaries {memory['temporaries_gib']:.2f} + code {memory['code_gib']:.3f}"
        f" = {memory['peak_gib']:.2f} GiB",
        f"  HBM {memory['hbm_gib']:.1f} GiB, budget {memory['budget_gib']:.1f} GiB ({memory['margin']:.0%} margin): "
        + ("FITS" if memory["fits"] else "DOES NOT FIT"),
    ]
    if memory.get("compiler_refused"):
        lines.append(f"  the TPU compiler refused it: {report['compiler_message']} (peak above: a lower bound)")
    flops = report.get("flops_per_token")
    if flops:
        lines.append(
            f"  training FLOPs/token: compiled {flops['compiled']:.4g} "
            f"(rest {flops['compiled_rest']:.4g} + layers x {flops['compiled_per_layer']:.4g}; "
            f"XLA's count of the scanned step as is: {flops['compiled_as_is']:.4g}); "
            f"analytic 3x forward {flops['analytic']:.4g}, "
            f"with remat's recompute {flops['analytic_with_recompute']:.4g}; "
            f"compiled/analytic {flops['compiled_over_analytic']}, "
            f"/with recompute {flops['compiled_over_analytic_with_recompute']}"
        )
        lines.append(
            f"  step time lower bound (roofline, not a measurement): {report['roofline_step_seconds_lower_bound']} s"
        )
    return "\n".join(lines)


def slice_type(name: str) -> str:
    """``--tpu``'s value, checked when the command line is parsed (`tpu_slice`'s error otherwise)."""
    try:
        tpu_slice(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return name


def parallelism_type(text: str) -> ParallelismConfig:
    """``--parallelism``'s value as a `ParallelismConfig`, checked when the command line is parsed."""
    try:
        return parse_parallelism(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``soda compile``'s arguments (flags in any order, before or after the model)."""
    parser.add_argument(
        "model", choices=sorted(CATALOGUE), metavar="MODEL", help=f"a catalogue model: {', '.join(sorted(CATALOGUE))}"
    )
    parser.add_argument("--tpu", required=True, type=slice_type, help="slice type, e.g. v5p-32, v5p-256, v6e-64")
    parser.add_argument("--slices", type=int, default=1, help="slices joined over DCN (levanter's replica_dcn axis)")
    parser.add_argument(
        "--batch", type=int, default=SODA_BATCH_SIZE, help="sequences per step (with --decode: per decode step)"
    )
    parser.add_argument(
        "--seq", type=int, default=SODA_SEQ_LEN, help="sequence length (with --decode: KV cache positions)"
    )
    parser.add_argument("--vocab", type=int, default=SODA_VOCAB_SIZE, help="vocabulary size (SODA's: Llama-3 + audio)")
    parser.add_argument(
        "--parallelism",
        type=parallelism_type,
        default=None,
        metavar="NAME=VALUE,...",
        help="mesh, e.g. model=2 or replica=2,fsdp=false (default: FSDP over every chip)",
    )
    parser.add_argument(
        "--layer-loop", default="auto", choices=("auto", "scan", "unrolled"), help="scanned or unrolled layers"
    )
    parser.add_argument("--no-remat", action="store_true", help="gradient checkpointing off")
    parser.add_argument(
        "--no-flops", action="store_true", help="skip the FLOP count through the loops (two small compiles)"
    )
    parser.add_argument(
        "--decode",
        action="store_true",
        help="compile the inference decode step (batch sequences, KV cache of seq positions)",
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the report here")


def compile_main(argv: list[str]) -> int:
    """``soda compile ARGS`` on its own parser (the `soda` command line builds the same one)."""
    parser = argparse.ArgumentParser(
        prog="soda compile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Compile as the parsed arguments say, print the report; exit status 1 when it does not fit."""
    from soda_jax.aot.check import compile_report

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = train_config_for(
        args.model,
        batch=args.batch,
        seq=args.seq,
        parallelism=args.parallelism or ParallelismConfig(),
        layer_loop=args.layer_loop,
        gradient_checkpointing=not args.no_remat,
    )
    if args.decode:
        from soda_jax.aot.decode_step import decode_report, format_decode_report

        report = decode_report(
            config, args.tpu, vocab_size=args.vocab, batch=args.batch, columns=args.seq, model_name=args.model
        )
        print(format_decode_report(report))
    else:
        report = compile_report(
            config,
            args.tpu,
            vocab_size=args.vocab,
            num_slices=args.slices,
            count_flops=not args.no_flops,
            model_name=args.model,
        )
        print(format_report(report))
    if args.json:
        fileio.atomic_write_json(args.json, report)
    return 0 if report["memory"]["fits"] else 1
