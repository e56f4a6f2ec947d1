"""Compile SODA's four final runs for their published slices on this CPU host (libtpu), plus the
oversized case and the parallelism/remat choices compared; writes benchmarks/results/compile_final_runs.json.

    python benchmarks/compile_final_runs.py [--quick]     # --quick: SODA-135M only
    python benchmarks/compile_final_runs.py --table       # the README table from the saved results

Per-chip HBM and compile time come from XLA's TPU compiler; FLOPs per token are loop-corrected
(`soda_jax.aot.report`). Nothing here is a measurement of a TPU: no TPU is used.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time

from experiments.soda_models import SODA_PARALLELISM, SODA_TPU_SLICES
from soda_jax import fileio
from soda_jax.aot.check import compile_report, flops_report
from soda_jax.aot.cli import format_report, train_config_for
from soda_jax.models.catalogue import CATALOGUE
from soda_jax.scaling.sweep import SODA_VOCAB_SIZE
from soda_jax.training.parallelism import ParallelismConfig

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "compile_final_runs.json")
NAMES = {shape: name for name, shape in CATALOGUE.items()}


def cases(quick: bool) -> list[dict]:
    finals = [dict(model=NAMES[shape], tpu=tpu, parallelism=SODA_PARALLELISM[shape], kind="final")
              for shape, tpu in SODA_TPU_SLICES.items()]  # fmt: skip
    if quick:
        return finals[:1]
    return finals + [
        dict(model="soda-4b", tpu="v5p-8", parallelism=ParallelismConfig(), kind="oversized"),
        dict(model="soda-4b", tpu="v5p-256", parallelism=ParallelismConfig(), kind="choice"),
        dict(model="soda-4b", tpu="v5p-256", parallelism=ParallelismConfig(model=2), kind="choice", remat=False),
    ]


def key(report_or_case: dict) -> tuple:
    parallelism = report_or_case["parallelism"]
    parallelism = parallelism if isinstance(parallelism, dict) else dataclasses.asdict(parallelism)
    remat = report_or_case.get("gradient_checkpointing", report_or_case.get("remat", True))
    return (report_or_case.get("model_name", report_or_case.get("model")), report_or_case["tpu"],
            json.dumps(parallelism, sort_keys=True), remat)  # fmt: skip


def config_of(case: dict):
    return train_config_for(case["model"], batch=512, seq=4096, parallelism=case["parallelism"],
                            gradient_checkpointing=case.get("remat", True))  # fmt: skip


def save(done: list[dict]) -> None:
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    fileio.atomic_write_json(RESULTS, done)


def markdown_table(done: list[dict]) -> str:
    """The README's table: one row per compiled case."""
    rows = ["| model | slice (chips) | mesh | remat | params + opt state GiB/chip | temporaries GiB/chip | peak / budget GiB/chip | fits | compile s | compiled / analytic FLOPs per token |",
            "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in done:
        m = r["memory"]
        mesh = "x".join(f"{k} {v}" for k, v in r["mesh"].items() if v > 1)
        flops = r.get("flops_per_token")
        ratio = (f"{flops['compiled']:.3g} / {flops['analytic']:.3g} = {flops['compiled_over_analytic']}" if flops else "not counted")
        rows.append(
            f"| {r['model_name']} | {r['tpu']} ({r['chips']}) | {mesh} | {'on' if r['gradient_checkpointing'] else 'off'} | "
            f"{m['parameters_gib'] + m['optimizer_state_gib']:.2f} | {m['temporaries_gib']:.2f} | {m['peak_gib']:.1f} / {m['budget_gib']:.1f} | "
            f"{'yes' if m['fits'] else '**no**'} | {r['compile_seconds']:.0f} | {ratio} |"
        )
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    """First every case's memory (one compile each), then the final runs' FLOP counts (two shallow
    compiles each); results are saved after each compile, and a rerun skips what is there."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    done = json.load(open(RESULTS)) if os.path.exists(RESULTS) else []
    if "--table" in argv:
        print(markdown_table(done))
        return 0
    by_key = {key(r): r for r in done}
    todo = cases("--quick" in argv)
    for case in todo:
        if key(case) in by_key:
            continue
        started = time.time()
        report = compile_report(config_of(case), case["tpu"], vocab_size=SODA_VOCAB_SIZE, count_flops=False, model_name=case["model"])
        report["kind"] = case["kind"]
        report["wall_seconds"] = round(time.time() - started, 1)
        print(format_report(report), flush=True)
        done.append(report)
        by_key[key(report)] = report
        save(done)
    for case in todo:
        report = by_key[key(case)]
        if case["kind"] != "final" or "flops_per_token" in report:
            continue
        started = time.time()
        report.update(flops_report(config_of(case), report, vocab_size=SODA_VOCAB_SIZE, scanned=report["layer_loop"] == "scan"))
        report["flops_seconds"] = round(time.time() - started, 1)
        print(format_report(report), flush=True)
        save(done)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
