"""The demo's data steps (no training) through the executor on a local Ray: where each step's time goes.

    .venv/bin/python benchmarks/bench_pipeline.py [--repeats 3] [--keep]

Each repeat runs the steps of `soda_jax.recipes.demo_data.demo_caches` (synthesis, text tokenizer, two
tokenize and two interleave steps) from nothing into a fresh temporary prefix, on a fresh local Ray,
as `make demo` does, and reads the executor's `RunReport.timings`: per step its wall time, the
worker's start-up before any code of ours ran, the import of the step's module, and the step's own
work. Fixed costs are everything but the work; their share is summed over the steps.

Prints one line per step (medians over the repeats) and writes benchmarks/results/bench_pipeline.json
with the commit, the machine and the load average before and after: the machine may be shared, so
compare runs at similar load, and repeat.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

TIMING_FIELDS = ("wall_s", "startup_s", "import_s", "work_s", "fixed_s")


def run_once(keep: bool) -> dict:
    """One cold run of the data steps into a fresh prefix; its wall time and per-step timings."""
    from soda_jax.execution import Executor
    from soda_jax.execution.parallel import shutdown_workers
    from soda_jax.recipes.demo_data import demo_caches

    prefix = tempfile.mkdtemp(prefix="bench-pipeline-")
    load_before = os.getloadavg()
    executor = Executor(prefix)
    started = time.perf_counter()
    report = executor.run(list(demo_caches().values()), description="bench_pipeline: the demo's data steps")
    wall = time.perf_counter() - started
    shutdown_workers()
    if not keep:
        shutil.rmtree(prefix, ignore_errors=True)
    steps = {
        name: {
            "wall_s": t.wall_s,
            "startup_s": t.startup_s,
            "import_s": t.import_s,
            "work_s": t.work_s,
            "fixed_s": t.fixed_s,
        }
        for name, t in report.timings.items()
    }
    fixed, total = sum(s["fixed_s"] for s in steps.values()), sum(s["wall_s"] for s in steps.values())
    return {
        "prefix": prefix if keep else None,
        "wall_s": round(wall, 3),
        "steps": steps,
        "fixed_share": round(fixed / total, 3) if total else None,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
    }


def medians(runs: list[dict]) -> dict:
    """Per step and field, the median over ``runs``; the whole run's median wall time and fixed share."""
    names = list(runs[0]["steps"])
    return {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "fixed_share": statistics.median(r["fixed_share"] for r in runs),
        "steps": {
            n: {f: round(statistics.median(r["steps"][n][f] for r in runs), 3) for f in TIMING_FIELDS} for n in names
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep each run's prefix (the default removes it)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # workers inherit it (parallel.FORWARDED_ENV): nothing downloads

    started = time.perf_counter()
    from result_files import Load, write_results  # imports soda_jax.execution, which the driver pays too

    import soda_jax.recipes.demo_data  # noqa: F401  (the driver's own imports, as `make demo` pays them)

    driver_import_s = time.perf_counter() - started
    load = Load()
    runs = [run_once(args.keep) for _ in range(args.repeats)]
    summary = medians(runs)
    width = max(len(n) for n in summary["steps"])
    print(
        f"{'step':{width}s}  {'wall':>6s}  {'start-up':>8s}  {'imports':>7s}  {'work':>6s}  {'fixed':>6s}"
        f"   (seconds, median of {len(runs)})"
    )
    for name, s in summary["steps"].items():
        print(
            f"{name:{width}s}  {s['wall_s']:6.1f}  {s['startup_s']:8.1f}  {s['import_s']:7.1f}"
            f"  {s['work_s']:6.1f}  {s['fixed_s']:6.1f}"
        )
    walls = ", ".join(f"{r['wall_s']:.1f}" for r in runs)
    print(
        f"data steps end to end: {summary['wall_s']:.1f} s (runs: {walls}); "
        f"fixed costs {100 * summary['fixed_share']:.0f}% of the steps' summed wall time; "
        f"driver imports {driver_import_s:.1f} s"
    )
    print(load.finish().banner())
    result = {
        "driver_import_s": round(driver_import_s, 3),
        "repeats": len(runs),
        "median": summary,
        "runs": runs,
    }
    print(f"wrote {write_results('bench_pipeline', result, load)}")


if __name__ == "__main__":
    main()
