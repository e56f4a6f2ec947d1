"""``compile_report``: compile a run's training step for a TPU slice on this host and say whether it fits.

Used by ``soda compile`` (docs/tpu.md), by `default_train`'s pre-flight check before a step is
sent to a cluster, and by the sweep's slice choice. A step that does not fit is a result (with
numbers), not a crash; a step that cannot be compiled at all (a sharding error) raises.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from levanter.layers.attention import AttentionBackend

from soda_jax.aot.report import (
    FlopsReport,
    compiled_flops,
    memory_report,
    per_token,
    refused_memory_report,
    roofline_seconds,
)
from soda_jax.aot.train_step import TPU_BACKEND, compile_train_step
from soda_jax.execution.tpu_slices import tpu_slice
from soda_jax.models.flops import TRAINING_FLOPS_MULTIPLIER
from soda_jax.training.config import TrainConfig
from soda_jax.training.parallelism import ParallelismConfig
from soda_jax.training.train import scan_layers

logger = logging.getLogger(__name__)


class DoesNotFitError(RuntimeError):
    """A training step needs more HBM per chip than its slice has (with the margin); carries the report."""

    def __init__(self, report: dict[str, Any]):
        self.report = report
        memory = report["memory"]
        super().__init__(
            f"{report['model_name']} batch {report['batch_size']} x seq {report['seq_len']} does not fit "
            f"{report['tpu']}: needs {'at least ' if memory.get('compiler_refused') else ''}"
            f"{memory['peak_gib']:.1f} GiB per chip, budget {memory['budget_gib']:.1f} GiB "
            f"({memory['hbm_gib']:.1f} GiB HBM less {memory['margin']:.0%}); "
            f"parameters {memory['parameters_gib']:.2f}, "
            f"optimizer state {memory['optimizer_state_gib']:.2f}, temporaries {memory['temporaries_gib']:.2f} GiB"
        )


FLOP_COUNT_DEPTH = 4
"""Layers of the FLOP-counting compiles: enough for a loop of 4 and of 2 iterations."""


def flop_countable(config: TrainConfig) -> TrainConfig:
    """``config``'s step as XLA can count it: every FLOP outside an opaque kernel or an uncounted loop.

    Same model width, optimizer, precision, remat and layer loop; but `FLOP_COUNT_DEPTH` layers, one
    sequence on one chip (FLOPs per token depend on neither the batch nor the mesh, and on one chip
    XLA's SPMD partitioner adds no collective matmul loops, which it also counts once), and the loss
    over materialised logits ("full" cross-entropy: the fused one loops over blocks of the batch).
    Attention is switched to the plain kernel by the caller (splash is a Pallas kernel that declares
    no cost, so XLA counts it as 0)."""
    model = dataclasses.replace(config.model, num_layers=FLOP_COUNT_DEPTH)
    recipe = dataclasses.replace(config.recipe, batch_size=1)
    return dataclasses.replace(
        config, model=model, recipe=recipe, cross_entropy="full", parallelism=ParallelismConfig()
    )


def counted_flops_per_token(config: TrainConfig, vocab_size: int, tpu) -> tuple[float, float]:
    """(all but the layers, one layer): training FLOPs per token, as XLA counts the compiled program.

    XLA counts a loop body once. With scanned layers, the same step compiled with 1 and then 2 layers
    per loop iteration counts ``rest + layer`` and ``rest + 2 x layer`` (each with the forward loop,
    the backward loop and remat's recomputation exactly as the run compiles them); with unrolled
    layers, depth 1 and depth 2 do. Compiled for one chip of ``tpu`` (`flop_countable`)."""
    countable = flop_countable(config)
    tokens = countable.recipe.batch_size * countable.recipe.seq_len
    scanned = scan_layers(config.layer_loop, TPU_BACKEND)
    counts = []
    for n in (1, 2):
        if scanned:
            variant, unroll = countable, n
        else:
            variant, unroll = (
                dataclasses.replace(countable, model=dataclasses.replace(countable.model, num_layers=n)),
                1,
            )
        step = compile_train_step(
            variant, vocab_size, tpu, attention=AttentionBackend.VANILLA, layer_unroll=unroll, one_chip=True
        )
        counts.append(per_token(compiled_flops(step.compiled), 1, tokens))
    layer = counts[1] - counts[0]
    return counts[0] - layer, layer


def compile_report(
    config: TrainConfig,
    tpu: str,
    *,
    vocab_size: int,
    num_slices: int = 1,
    count_flops: bool = True,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Compile ``config``'s training step for ``num_slices`` x ``tpu``; per-chip memory, FLOPs, timing.

    ``count_flops`` adds the FLOP count (`counted_flops_per_token`: two more, small, compiles).
    """
    slice_ = tpu_slice(tpu)
    started = time.time()
    step = compile_train_step(config, vocab_size, slice_, num_slices=num_slices)
    if step.out_of_memory is not None:
        memory = refused_memory_report(step.out_of_memory, step.state_shape, step.state_shape, slice_)
    else:
        memory = memory_report(step.compiled, step.state_shape, slice_)
    recipe = config.recipe
    tokens = recipe.batch_size * recipe.seq_len
    chips = slice_.num_chips * num_slices
    report: dict[str, Any] = {
        "model_name": model_name or str(config.model),
        "model": dataclasses.asdict(config.model),
        "tpu": slice_.name,
        "num_slices": num_slices,
        "chips": chips,
        "hosts": slice_.num_hosts * num_slices,
        "topology": slice_.topology,
        "batch_size": recipe.batch_size,
        "seq_len": recipe.seq_len,
        "vocab_size": vocab_size,
        "padded_vocab_size": step.padded_vocab_size,
        "parallelism": dataclasses.asdict(config.parallelism),
        "mesh": dict(step.mesh.shape),
        "layer_loop": "scan" if step.scanned_layers else "unrolled",
        "gradient_checkpointing": config.gradient_checkpointing,
        "attention": str(step.attention),
        "compile_seconds": round(step.seconds, 1),
        "memory": memory.as_dict(),
    }
    if step.out_of_memory is not None:
        report["compiler_message"] = step.out_of_memory.splitlines()[0][:500]
        report["total_seconds"] = round(time.time() - started, 1)
        return report
    cost = step.compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    report["compiled_flops_per_token_as_is"] = per_token(float(cost.get("flops", 0.0)), chips, tokens)
    report["bytes_accessed_per_chip"] = float(cost.get("bytes accessed", 0.0))
    if count_flops:
        report.update(flops_report(config, report, vocab_size=vocab_size))
    report["total_seconds"] = round(time.time() - started, 1)
    return report


def count_training_flops(config: TrainConfig, vocab_size: int, tpu, *, compiled_as_is: float = 0.0) -> FlopsReport:
    """``config``'s training FLOPs per token counted from compiled programs (`counted_flops_per_token`)
    next to the analytic count, with and without remat's recomputation."""
    rest, layer = counted_flops_per_token(config, vocab_size, tpu)
    forward = config.model.forward_flops_per_token(vocab_size, config.recipe.seq_len)
    lm_head = 2 * config.model.hidden_dim * vocab_size
    # remat (scanned layers only: levanter does not checkpoint unrolled layers) runs each layer's forward again
    remat = config.gradient_checkpointing and scan_layers(config.layer_loop, TPU_BACKEND)
    recompute = (forward - lm_head) if remat else 0
    return FlopsReport(
        compiled_as_is=compiled_as_is,
        compiled=rest + config.model.num_layers * layer,
        compiled_per_layer=layer,
        compiled_rest=rest,
        analytic=float(TRAINING_FLOPS_MULTIPLIER * forward),
        analytic_with_recompute=float(TRAINING_FLOPS_MULTIPLIER * forward + recompute),
    )


def flops_report(config: TrainConfig, report: dict[str, Any], *, vocab_size: int) -> dict[str, Any]:
    """`count_training_flops` and the roofline bound, for a step already compiled into ``report``."""
    slice_ = tpu_slice(report["tpu"])
    num_slices = report["num_slices"]
    recipe = config.recipe
    flops = count_training_flops(config, vocab_size, slice_, compiled_as_is=report["compiled_flops_per_token_as_is"])
    forward = config.model.forward_flops_per_token(vocab_size, recipe.seq_len)
    attention_free = config.model.forward_flops_per_token(vocab_size, 1)  # the s x s terms at s = 1: ~0
    tokens = recipe.batch_size * recipe.seq_len
    bound = roofline_seconds(flops.compiled, tokens, report["bytes_accessed_per_chip"], slice_, num_slices)
    return {
        "flops_per_token": flops.as_dict(),
        "attention_share_of_analytic": round(1 - attention_free / forward, 3),
        "roofline_step_seconds_lower_bound": round(bound, 4),
    }


def check_fits(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` if its step fits, else `DoesNotFitError` with the numbers."""
    if not report["memory"]["fits"]:
        raise DoesNotFitError(report)
    return report
