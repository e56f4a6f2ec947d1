"""Compile SODA's four final runs for their published slices on this CPU host (libtpu), plus the
oversized case, the parallelism/remat choices compared and the decode step; writes
benchmarks/results/compile_final_runs.json.

    python benchmarks/compile_final_runs.py [--quick] [--kind final,choice,...] [--model soda-4b,...]
                                                          # --quick: SODA-135M only
    python benchmarks/compile_final_runs.py --table       # the README tables from the saved results

Each case compiles in its own process (libtpu's threads made a finished process hang at exit; one
process per compile also frees its memory), watched: past `RSS_LIMIT_GIB` of resident memory it is
stopped and recorded as such. Per-chip HBM and compile time come from XLA's TPU compiler; FLOPs per
token are counted through the loops (`soda_jax.aot.check.counted_flops_per_token`). No TPU is used:
nothing here is a measurement of a TPU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time

from result_files import Load, previous_report, write_results

from soda_jax import fileio
from soda_jax.aot.layouts import Layout, best_layout, headroom_gib
from soda_jax.models.catalogue import CATALOGUE
from soda_jax.recipes.soda_models import SODA_PARALLELISM, SODA_TPU_SLICES
from soda_jax.scaling.sweep import SODA_VOCAB_SIZE
from soda_jax.training.parallelism import ParallelismConfig

NAME = "compile_final_runs"
"""Its results file (`result_files.results_path`): ``{"cases": [one report per case]}``."""
NAMES = {shape: name for name, shape in CATALOGUE.items()}
RSS_LIMIT_GIB = 12.0
"""A compile's resident memory is capped here (the machine's 24 GiB are shared)."""
LAYOUTS = tuple(Layout(ParallelismConfig(model=m), remat) for m in (1, 2) for remat in (True, False))
"""The layouts compared for each final run (`soda_jax.aot.layouts`): FSDP over the slice, and FSDP
with 2-way tensor parallelism, each with and without remat; the final run's own is its "final" case."""
DECODE_BATCH, DECODE_COLUMNS = 64, 4096
"""The decode step compiled: 64 sequences with a KV cache of 4096 positions each."""


def cases(quick: bool) -> list[dict]:
    finals = [
        dict(model=NAMES[shape], tpu=tpu, parallelism=dataclasses.asdict(SODA_PARALLELISM[shape]), kind="final")
        for shape, tpu in SODA_TPU_SLICES.items()
    ]
    if quick:
        return finals[:1]
    flops = [{**case, "kind": "flops"} for case in finals]  # the FLOP count alone (two small compiles each)
    fsdp = dataclasses.asdict(ParallelismConfig())
    choices = [
        dict(
            model=final["model"],
            tpu=final["tpu"],
            parallelism=dataclasses.asdict(layout.parallelism),
            remat=layout.remat,
            kind="choice",
        )
        for final in finals
        for layout in LAYOUTS
        if (dataclasses.asdict(layout.parallelism), layout.remat) != (final["parallelism"], True)
    ]
    return (
        finals
        + flops
        + choices
        + [
            dict(model="soda-4b", tpu="v5p-8", parallelism=fsdp, kind="oversized"),
            dict(model="soda-4b", tpu="v5p-8", parallelism=fsdp, kind="decode"),
        ]
    )


def key(case: dict) -> str:
    return json.dumps(
        [case["model"], case["tpu"], case["parallelism"], case.get("remat", True), case["kind"]], sort_keys=True
    )


def run_case(case: dict) -> dict:
    """Compile one case in this process (the child): the report, with this process's peak RSS."""
    from soda_jax.aot.check import compile_report, count_training_flops
    from soda_jax.aot.cli import train_config_for
    from soda_jax.aot.decode_step import decode_report
    from soda_jax.execution.tpu_slices import tpu_slice

    config = train_config_for(
        case["model"],
        batch=512,
        seq=4096,
        parallelism=ParallelismConfig(**case["parallelism"]),
        gradient_checkpointing=case.get("remat", True),
    )
    if case["kind"] == "flops":
        started = time.time()
        report = {
            "flops_per_token": count_training_flops(config, SODA_VOCAB_SIZE, tpu_slice(case["tpu"])).as_dict(),
            "model_name": case["model"],
            "num_layers": config.model.num_layers,
            "flops_seconds": round(time.time() - started, 1),
        }
    elif case["kind"] == "decode":
        report = decode_report(
            config,
            case["tpu"],
            vocab_size=SODA_VOCAB_SIZE,
            batch=DECODE_BATCH,
            columns=DECODE_COLUMNS,
            model_name=case["model"],
        )
    else:
        report = compile_report(
            config, case["tpu"], vocab_size=SODA_VOCAB_SIZE, count_flops=False, model_name=case["model"]
        )
    report["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return report


def rss_gib(pid: int) -> float:
    """Resident memory of ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 2**20
    except (OSError, StopIteration):
        return 0.0


def compile_in_child(case: dict) -> dict:
    """`run_case` in a child process, stopped past `RSS_LIMIT_GIB`; the report or what stopped it."""
    with tempfile.TemporaryDirectory(prefix="compile-case-") as tmp:
        return watch_child(case, os.path.join(tmp, "report.json"))


def watch_child(case: dict, out: str) -> dict:
    """`run_case` for ``case`` in a child process that writes its report to ``out``."""
    started = time.time()
    child = subprocess.Popen([sys.executable, __file__, "--case", json.dumps(case), "--out", out])
    peak = 0.0
    while child.poll() is None:
        peak = max(peak, rss_gib(child.pid))
        if peak > RSS_LIMIT_GIB:
            child.kill()
            child.wait()
            return {
                **case,
                "stopped": f"resident memory passed {RSS_LIMIT_GIB} GiB after {time.time() - started:.0f} s",
            }
        time.sleep(1.0)
    if child.returncode != 0 or not os.path.exists(out):
        return {**case, "stopped": f"the compile exited with {child.returncode}"}
    report = fileio.read_json(out)
    return {
        **report,
        **case,
        "wall_seconds": round(time.time() - started, 1),
    }  # the case's names win (its "model" is a name)


def markdown_tables(done: list[dict]) -> str:
    """The README's tables: the final runs, the choices compared, the oversized case and the decode step."""
    order = [NAMES[shape] for shape in SODA_TPU_SLICES]
    done = sorted(done, key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
    finals = [
        "| model | slice (chips) | mesh | params + opt state GiB/chip | temporaries GiB/chip "
        "| peak / budget GiB/chip | fits | compile s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    others = [
        "| case | model | slice | mesh | remat | peak / budget GiB/chip | temporaries GiB/chip | fits | compile s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    layouts = [
        "| model (slice) | mesh | remat | peak / budget GiB/chip | headroom GiB/chip | compile s | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    by_model: dict[str, list[dict]] = {}
    for r in done:
        if r["kind"] in ("final", "choice") and "stopped" not in r:
            by_model.setdefault(r["model"], []).append(r)
    for model, reports in by_model.items():
        try:
            chosen = best_layout(reports)
        except ValueError:
            chosen = None
        for r in sorted(reports, key=lambda r: (r["mesh"].get("model", 1), not r["gradient_checkpointing"])):
            m, mesh = r["memory"], " x ".join(f"{k} {v}" for k, v in r["mesh"].items() if v > 1)
            peak = f"{'at least ' if m.get('compiler_refused') else ''}{m['peak_gib']:.1f} / {m['budget_gib']:.1f}"
            layouts.append(
                f"| {model} ({r['tpu']}) | {mesh} | {'on' if r['gradient_checkpointing'] else 'off'} | {peak} | "
                f"{headroom_gib(r):.1f}{'' if m['fits'] else ' (does not fit)'} | {r['compile_seconds']:.0f} | "
                f"{'**yes**' if r is chosen else ''} |"
            )
    counted = [
        "| model (slice) | compiled: rest + layers x per layer | compiled FLOPs/token "
        "| analytic 3 x forward (compiled / it) | analytic + remat recompute (compiled / it) "
        "| XLA's count of the scanned step as is | compile s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in done:
        f = r.get("flops_per_token")
        if f and r["kind"] in ("flops", "final"):
            counted.append(
                f"| {r['model']} ({r['tpu']}) | {f['compiled_rest']:.3g} + "
                f"{r.get('num_layers', '')}{' x ' if 'num_layers' in r else ''}{f['compiled_per_layer']:.3g} | "
                f"{f['compiled']:.3g} | {f['analytic']:.3g} ({f['compiled_over_analytic']}) | "
                f"{f['analytic_with_recompute']:.3g} ({f['compiled_over_analytic_with_recompute']}) | "
                f"{f['compiled_as_is']:.3g} | {r.get('flops_seconds', r.get('total_seconds', 0)):.0f} |"
            )
        if r["kind"] == "flops":
            continue
        if r["kind"] == "choice":
            continue
        if "stopped" in r:
            others.append(f"| {r['kind']} | {r['model']} | {r['tpu']} | | | stopped: {r['stopped']} | | | |")
            continue
        m, mesh = r["memory"], "x".join(f"{k} {v}" for k, v in r["mesh"].items() if v > 1)
        if r["kind"] == "final":
            finals.append(
                f"| {r['model_name']} | {r['tpu']} ({r['chips']}) | {mesh} | "
                f"{m['parameters_gib'] + m['optimizer_state_gib']:.2f} | {m['temporaries_gib']:.2f} | "
                f"{m['peak_gib']:.1f} / {m['budget_gib']:.1f} | {'yes' if m['fits'] else '**no**'} | "
                f"{r['compile_seconds']:.0f} |"
            )
        elif r["kind"] == "decode":
            others.append(
                f"| decode, batch {r['batch_size']} x {r['cache_columns']} cached | {r['model_name']} | "
                f"{r['tpu']} | {mesh} | - | {m['peak_gib']:.1f} / {m['budget_gib']:.1f} "
                f"(KV cache {m['kv_cache_gib']:.1f}, parameters {m['parameters_gib']:.2f}) | "
                f"{m['temporaries_gib']:.2f} | {'yes' if m['fits'] else '**no**'} | {r['compile_seconds']:.0f} |"
            )
        else:
            others.append(
                f"| {r['kind']} | {r['model_name']} | {r['tpu']} | {mesh} | "
                f"{'on' if r['gradient_checkpointing'] else 'off'} | {m['peak_gib']:.1f} / {m['budget_gib']:.1f} | "
                f"{m['temporaries_gib']:.2f} | {'yes' if m['fits'] else '**no**'} | {r['compile_seconds']:.0f} |"
            )
    return "\n\n".join("\n".join(table) for table in (finals, counted, layouts, others))


def main(argv: list[str]) -> int:
    """Every case not yet in the results, each compiled in a child process; saved after each."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if "--case" in argv:
        report = run_case(json.loads(argv[argv.index("--case") + 1]))
        fileio.atomic_write_json(argv[argv.index("--out") + 1], report)
        return 0
    saved = previous_report(NAME)
    done = saved["cases"] if isinstance(saved, dict) else saved or []  # a bare list: a file from before the stamps
    if "--table" in argv:
        print(markdown_tables(done))
        return 0
    kinds = argv[argv.index("--kind") + 1].split(",") if "--kind" in argv else None
    models = argv[argv.index("--model") + 1].split(",") if "--model" in argv else None
    finished = {key(r) for r in done}
    load = Load()
    for case in cases("--quick" in argv):
        if key(case) in finished or (kinds and case["kind"] not in kinds) or (models and case["model"] not in models):
            continue
        report = compile_in_child(case)
        done.append(report)
        write_results(NAME, {"cases": done}, load.finish())
        print(
            json.dumps(
                {
                    k: report.get(k)
                    for k in (
                        "model",
                        "tpu",
                        "kind",
                        "stopped",
                        "memory",
                        "flops_per_token",
                        "peak_rss_gib",
                        "wall_seconds",
                    )
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # libtpu's threads can keep a finished interpreter from exiting
