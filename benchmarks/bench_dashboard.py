"""Dashboard responsiveness on large outputs, over real HTTP (uvicorn), against baselines measured
in the same run.

    .venv/bin/python benchmarks/bench_dashboard.py [--files 100000] [--rows 1000000] [--repeats 3]

* A step directory with 100k files: the step page (first 200 entries listed) and the file browser
  (first 500), against the bare ``os.scandir`` of the directory (floor) and fsspec's
  ``ls(detail=True)`` (what a naive listing through the io layer costs).
* A metrics.jsonl of 1M rows (~190 bytes each, as training writes them, a validation loss every
  1,000 steps): ``/api/metrics`` cold (file changed) and warm (cached, what a polling page pays),
  against ``json.loads`` of every line (what plotting all rows costs before any drawing).

Goal: each page answers in under 1 s. Prints times and ratios and writes
benchmarks/results/bench_dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import urllib.request

from result_files import Load, write_results

from soda_jax import fileio
from soda_jax.dashboard.server import BackgroundServer
from soda_jax.execution.status import write_status

EVAL_EVERY = 1000


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as r:
        assert r.status == 200, url
        return r.read()


def make_many_files(step: str, count: int) -> None:
    write_status(step, "SUCCESS")
    for i in range(count):
        with open(os.path.join(step, f"shard-{i:06d}.parquet"), "wb"):
            pass


def make_metrics(step: str, rows: int) -> int:
    write_status(step, "SUCCESS")
    with open(os.path.join(step, "metrics.jsonl"), "w") as f:
        for i in range(rows):
            row = {
                "step": i,
                "loss": 3.0 + 1.0 / (i + 1),
                "lr": 3e-4,
                "grad_norm": 0.9,
                "tokens": 4096 * 256 * (i + 1),
                "step_seconds": 0.41,
                "tokens_per_second": 2.5e6,
                "model_flops_per_second": 1.1e15,
            }
            if i % EVAL_EVERY == 0:
                row["validation_loss"] = 3.1 + 1.0 / (i + 1)
            f.write(json.dumps(row) + "\n")
    return os.path.getsize(os.path.join(step, "metrics.jsonl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load = Load()

    with tempfile.TemporaryDirectory() as prefix:
        many, metrics = os.path.join(prefix, "tokenized", "many"), os.path.join(prefix, "checkpoints", "long")
        os.makedirs(many)
        os.makedirs(metrics)
        start = time.perf_counter()
        make_many_files(many, args.files)
        size = make_metrics(metrics, args.rows)
        print(
            f"wrote {args.files:,} files and a {size / 1e6:.0f} MB metrics.jsonl in {time.perf_counter() - start:.0f} s"
        )

        fs, _ = fileio.filesystem(many)
        floor_list = best_of(args.repeats, lambda: [e.name for e in os.scandir(many)])
        fsspec_list = best_of(args.repeats, lambda: fs.ls(many, detail=True))

        def parse_all() -> None:
            with open(os.path.join(metrics, "metrics.jsonl"), "rb") as f:
                [json.loads(line) for line in f]

        parse_all_s = best_of(1, parse_all)

        with BackgroundServer(prefix) as base:
            step_page = best_of(args.repeats, lambda: fetch(f"{base}/step/tokenized/many"))
            files_page = best_of(args.repeats, lambda: fetch(f"{base}/files/tokenized/many"))
            fetch(f"{base}/api/metrics/checkpoints/long")  # the first read also pays imports
            cold = []
            for _ in range(args.repeats):
                os.utime(os.path.join(metrics, "metrics.jsonl"))  # a new mtime: the cache must re-read
                start = time.perf_counter()
                curves = json.loads(fetch(f"{base}/api/metrics/checkpoints/long"))
                cold.append(time.perf_counter() - start)
            warm = best_of(args.repeats, lambda: fetch(f"{base}/api/metrics/checkpoints/long"))
            metrics_page = best_of(args.repeats, lambda: fetch(f"{base}/step/checkpoints/long"))

    result = {
        "files": args.files,
        "listing": {
            "step_page_s": step_page,
            "file_browser_s": files_page,
            "floor_os_scandir_s": floor_list,
            "fsspec_ls_detail_s": fsspec_list,
            "file_browser_over_floor": files_page / floor_list,
        },
        "metrics_rows": args.rows,
        "metrics_mb": size / 1e6,
        "metrics": {
            "api_cold_s": min(cold),
            "api_warm_s": warm,
            "step_page_s": metrics_page,
            "points_plotted": curves["kept"],
            "validation_points": sum(v is not None for v in curves["series"]["validation_loss"]),
            "baseline_parse_every_line_s": parse_all_s,
            "cold_over_baseline": min(cold) / parse_all_s,
        },
    }
    m = result["metrics"]
    print(
        f"{args.files:,} files: step page {step_page:.3f} s, file browser {files_page:.3f} s "
        f"(os.scandir alone {floor_list:.3f} s, fsspec ls(detail) {fsspec_list:.3f} s)"
    )
    print(
        f"{args.rows:,}-row metrics.jsonl: /api/metrics cold {m['api_cold_s']:.3f} s, warm {warm * 1000:.1f} ms, "
        f"step page {metrics_page:.3f} s; {m['points_plotted']:,} points plotted "
        f"({m['validation_points']} validation); "
        f"json.loads of every line {parse_all_s:.2f} s (cold/that = {m['cold_over_baseline']:.2f})"
    )
    print("goal < 1 s each:", "met" if max(step_page, files_page, m["api_cold_s"], metrics_page) < 1 else "NOT met")
    print(load.finish().banner())
    print(f"wrote {write_results('bench_dashboard', result, load)}")


if __name__ == "__main__":
    main()
