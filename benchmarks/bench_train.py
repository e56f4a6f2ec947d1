"""Training throughput of our levanter step on this CPU, against the matmul peak and HF transformers.

    .venv/bin/python benchmarks/bench_train.py [--steps 30] [--repeats 2] [--profile]

One CPU device (no fake devices). Model: `BENCH_20M` (d 384, ff 1024, 6 layers, 6/2 heads x 64)
with a 16,688-id vocabulary (~22M parameters), batch 8 x 256 tokens. Measured in the same run:

* peak: a large jit-compiled f32 ``jnp.dot`` (4096 x 4096), best of several: the machine's
  attainable matmul FLOP/s;
* ours: `soda_jax.training.train.train` end to end on a synthetic token cache (data loading,
  Cautious optimizer, z-loss, metrics, checkpointing at the end), median step after compilation,
  in f32 and in bf16 compute with the defaults on CPU (unrolled layers, fused cross-entropy: the
  token-blocked kernel, `soda_jax.training.token_blocked_loss`), and in f32 with materialised logits
  (``cross_entropy="full"``) and with scanned layers (the TPU/GPU loop);
* torch: the same architecture as transformers' ``Qwen3ForCausalLM`` with ``torch.optim.AdamW``
  on the same batch shape, f32, median step after warmup;
* profile (``--profile``): one more f32 default run under ``jax.profiler``; the self time of the
  training step's XLA thunks (`thunk_time_shares`): matmuls, layout copies, the rest, and how busy
  the XLA threads were over the traced steps.

Model FLOP/s use the training FLOPs per token (3 x levanter's forward count, attention included).
Goals: ours >= 55% of the peak and faster than torch. Writes benchmarks/results/bench_train.json.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # the training tests' cache writer
sys.path.insert(0, os.path.dirname(__file__))  # roofline, result_files

import numpy as np  # noqa: E402
from result_files import Load, write_results  # noqa: E402
from roofline import matmul_peak  # noqa: E402

from soda_jax.contracts import METRICS_FILE  # noqa: E402
from soda_jax.models import BENCH_20M, qwen3_config  # noqa: E402
from soda_jax.models.flops import TRAINING_FLOPS_MULTIPLIER  # noqa: E402

SEQ_LEN = 256
BATCH_SIZE = 8
TRAIN_DOCUMENTS = 400
STEP_MODULE = "jit_flat"
"""The XLA module of the training step (`soda_jax.training.dispatch.FlatJit` jits a function named ``flat``)."""
MATMUL_THUNKS = ("ynn_fusion", "dot", "xnn_fusion", "onednn")
"""Thunk name prefixes of matmuls (YNNPACK fusions, which also take a few norm-gradient fusions, and Eigen dots)."""
COPY_THUNK_MARKERS = ("copy", "transpose")
"""A thunk whose name holds one of these moves data between layouts (alone or fused with elementwise work)."""
WORKER_THREAD_SHARE = 0.05
"""A thread with at least this share of the thunk time is one of XLA's compute threads."""


def write_cache(root: str) -> int:
    from helpers_data import save_test_tokenizer
    from helpers_training import write_split

    from soda_jax.audio.vocab import AudioTextVocab
    from soda_jax.data.cache_vocab import save_cache_vocab

    vocab = AudioTextVocab.from_pretrained(save_test_tokenizer(os.path.join(root, "tok")))
    rng = np.random.default_rng(0)
    docs = [
        rng.integers(0, vocab.size, size=int(rng.integers(200, 2000))).astype(np.int32) for _ in range(TRAIN_DOCUMENTS)
    ]
    write_split(os.path.join(root, "cache", "train"), docs)
    write_split(os.path.join(root, "cache", "validation"), docs[:8])
    save_cache_vocab(vocab, os.path.join(root, "cache"))
    return vocab.size


def ours(
    root: str, vocab_size: int, steps: int, precision: str, layer_loop: str = "auto", cross_entropy: str = "fused"
) -> float:
    """Median steady-state tokens/s of `train`."""
    from soda_jax.data.mixture import soda_mixture
    from soda_jax.training import CheckpointPolicy, OptimizerRecipe, TrainConfig, TrainRecipe
    from soda_jax.training.train import train

    out = tempfile.mkdtemp(dir=root)
    train(
        TrainConfig(
            data=soda_mixture({"bench": os.path.join(root, "cache")}, {"bench": 1.0}),
            model=BENCH_20M,
            output_path=out,
            recipe=TrainRecipe(
                seq_len=SEQ_LEN,
                batch_size=BATCH_SIZE,
                num_train_steps=steps,
                optimizer=OptimizerRecipe(learning_rate=1e-3),
            ),
            checkpoints=CheckpointPolicy(every_steps=None, every_minutes=None),
            precision=precision,
            layer_loop=layer_loop,
            cross_entropy=cross_entropy,
            gradient_checkpointing=False,
            steps_per_eval=10 * steps,
            max_eval_batches=1,
            export_hf=False,
        )
    )
    rows = [json.loads(line) for line in open(os.path.join(out, METRICS_FILE))]
    return statistics.median(r["tokens_per_second"] for r in rows[2:])  # 0: compile, 1: warm-up


def self_time_of(thread_events: list[dict]) -> float:
    """Microseconds one thread spent in thunks (nested thunks counted once)."""
    busy, end = 0.0, float("-inf")
    for event in sorted(thread_events, key=lambda e: e["ts"]):
        if event["ts"] + event["dur"] > end:
            busy += event["ts"] + event["dur"] - max(event["ts"], end)
            end = event["ts"] + event["dur"]
    return busy


def thunk_time_shares(trace_dir: str) -> dict:
    """Self time of the training step's XLA thunks in a perfetto trace (a loop's time excludes its
    body's): shares of matmuls, layout copies and the rest, the busiest thunks, and the fraction of
    the traced span the XLA threads spent in thunks."""
    path = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)[0]
    with gzip.open(path) as f:
        events = [
            e
            for e in json.load(f)["traceEvents"]
            if e.get("ph") == "X" and (e.get("args") or {}).get("hlo_module") == STEP_MODULE
        ]
    by_thread: dict[tuple, list[dict]] = collections.defaultdict(list)
    for event in events:
        by_thread[event["pid"], event["tid"]].append(event)
    self_time: collections.Counter[str] = collections.Counter()
    thread_time = {thread: sum(e["dur"] for e in thread_events) for thread, thread_events in by_thread.items()}
    for thread_events in by_thread.values():
        thread_events.sort(key=lambda e: (e["ts"], -e["dur"]))
        open_events: list[dict] = []
        for event in thread_events:
            while open_events and open_events[-1]["ts"] + open_events[-1]["dur"] <= event["ts"]:
                open_events.pop()
            if open_events:  # nested in a loop or call thunk: not that thunk's own time
                self_time[open_events[-1]["args"]["hlo_op"]] -= event["dur"]
            self_time[event["args"]["hlo_op"]] += event["dur"]
            open_events.append(event)
    total = sum(self_time.values())
    kinds: collections.Counter[str] = collections.Counter()
    for name, micros in self_time.items():
        if name.startswith(MATMUL_THUNKS):
            kinds["matmul"] += micros
        elif any(marker in name for marker in COPY_THUNK_MARKERS):
            kinds["layout_copy"] += micros
        else:
            kinds["other"] += micros
    span = max(e["ts"] + e["dur"] for e in events) - min(e["ts"] for e in events)
    # the XLA compute threads (a client thread runs a few tiny thunks too)
    workers = [t for t, micros in thread_time.items() if micros >= WORKER_THREAD_SHARE * sum(thread_time.values())]
    return {
        "thunk_seconds": total / 1e6,
        "shares": {kind: kinds[kind] / total for kind in ("matmul", "layout_copy", "other")},
        "threads": len(workers),
        "busy_fraction_of_threads": sum(self_time_of(by_thread[t]) for t in workers) / (span * len(workers)),
        "top_thunks_seconds": {name: micros / 1e6 for name, micros in self_time.most_common(12)},
    }


def profiled_run(root: str, vocab_size: int, steps: int) -> dict:
    """`thunk_time_shares` of one f32 default run (no Python tracing: it would slow the steps)."""
    import jax

    trace_dir = tempfile.mkdtemp(dir=root)
    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True, profiler_options=options):
        tokens_per_second = ours(root, vocab_size, steps, "f32")
    return {"tokens_per_second": tokens_per_second, **thunk_time_shares(trace_dir)}


def torch_baseline(vocab_size: int, steps: int) -> float:
    """Median tokens/s of transformers' Qwen3ForCausalLM + AdamW on the same shape (f32)."""
    import torch
    from transformers import Qwen3ForCausalLM

    hf_config = qwen3_config(BENCH_20M, SEQ_LEN).to_hf_config(vocab_size)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(hf_config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.98, 0.98), weight_decay=0.033)
    tokens = torch.randint(0, vocab_size, (BATCH_SIZE, SEQ_LEN))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return BATCH_SIZE * SEQ_LEN / statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2, help="take the best of this many runs (the CPU is shared)")
    parser.add_argument("--profile", action="store_true", help="also profile one f32 default run (thunk time shares)")
    args = parser.parse_args()
    load = Load()

    root = tempfile.mkdtemp(prefix="bench-train-")
    vocab_size = write_cache(root)
    flops_per_token = TRAINING_FLOPS_MULTIPLIER * BENCH_20M.forward_flops_per_token(vocab_size, SEQ_LEN)
    params = BENCH_20M.param_counts(vocab_size).total

    peak = max(matmul_peak() for _ in range(args.repeats))
    measured = {
        "ours_f32": max(ours(root, vocab_size, args.steps, "f32") for _ in range(args.repeats)),
        "ours_bf16": max(ours(root, vocab_size, args.steps, "bf16") for _ in range(args.repeats)),
        "ours_f32_full_logits": max(
            ours(root, vocab_size, args.steps, "f32", cross_entropy="full") for _ in range(args.repeats)
        ),
        "ours_f32_scanned": max(
            ours(root, vocab_size, args.steps, "f32", layer_loop="scan") for _ in range(args.repeats)
        ),
        "torch_f32": max(torch_baseline(vocab_size, args.steps) for _ in range(args.repeats)),
    }
    report = {
        "model": {
            "params": params,
            "vocab_size": vocab_size,
            "batch": BATCH_SIZE,
            "seq_len": SEQ_LEN,
            "training_flops_per_token": flops_per_token,
        },
        "matmul_peak_gflops": peak / 1e9,
        "runs": {
            name: {
                "tokens_per_second": tps,
                "model_gflops": tps * flops_per_token / 1e9,
                "fraction_of_matmul_peak": tps * flops_per_token / peak,
            }
            for name, tps in measured.items()
        },
        "ours_f32_over_torch": measured["ours_f32"] / measured["torch_f32"],
        "bf16_over_f32": measured["ours_bf16"] / measured["ours_f32"],
        "full_logits_over_fused": measured["ours_f32_full_logits"] / measured["ours_f32"],
        "unrolled_over_scanned": measured["ours_f32"] / measured["ours_f32_scanned"],
    }
    if args.profile:
        report["profile_ours_f32"] = profiled_run(root, vocab_size, args.steps)
    path = write_results("bench_train", report, load.finish())
    print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s   model: {params / 1e6:.1f}M params, batch {BATCH_SIZE} x {SEQ_LEN}")
    for name, run in report["runs"].items():
        print(
            f"{name:>20}: {run['tokens_per_second']:8.0f} tokens/s  {run['model_gflops']:6.1f} GFLOP/s  "
            f"{100 * run['fraction_of_matmul_peak']:5.1f}% of peak"
        )
    print(
        f"ours f32 / torch: {report['ours_f32_over_torch']:.2f}x   bf16 / f32: {report['bf16_over_f32']:.2f}x   "
        f"full logits / fused: {report['full_logits_over_fused']:.2f}x   "
        f"unrolled / scanned: {report['unrolled_over_scanned']:.2f}x"
    )
    if args.profile:
        profile = report["profile_ours_f32"]
        shares = "  ".join(f"{kind} {100 * share:.1f}%" for kind, share in profile["shares"].items())
        print(
            f"profile (ours f32, XLA thunk self time): {shares}; "
            f"XLA threads busy {100 * profile['busy_fraction_of_threads']:.0f}% of the traced span"
        )
    print(load.banner())
    print(f"wrote {path}")
    shutil.rmtree(root, ignore_errors=True)  # the runs' checkpoints and the trace: ~1 GB


if __name__ == "__main__":
    main()
