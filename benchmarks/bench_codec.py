"""Mimi encode speed on CPU: MimiCodec vs a bare transformers MimiModel forward on the same input.

Full-size Mimi config (kyutai/mimi's shapes, 79M params) with random weights: speed does not depend
on the weights. Bare and wrapped runs alternate so machine load hits both alike, and each is timed
twice: wall-clock with torch's default threads (the speed, audio seconds per second) and process
CPU time with one torch thread (the overhead: on a shared machine, other jobs stretch wall time but
hardly a single thread's CPU time). Minimum over repeats (the intrinsic cost); medians recorded too.

    .venv/bin/python benchmarks/bench_codec.py [--repeats 5] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from soda_jax.audio.codec import MimiCodec
from soda_jax.fileio import atomic_write_json

RESULTS = os.path.join(os.path.dirname(__file__), "results", "bench_codec.json")
NUM_CODEBOOKS = 8


def timed(fn, clock=time.perf_counter) -> float:
    start = clock()
    fn()
    return clock() - start


def bare_encode(codec: MimiCodec, wave: np.ndarray) -> None:
    """What a user of transformers would write: one forward, default config (no KV cache)."""
    codec.model.config.use_cache = False
    try:
        with torch.inference_mode():
            codec.model.encode(torch.from_numpy(wave)[None, None], num_quantizers=NUM_CODEBOOKS)
    finally:
        codec.model.config.use_cache = True


def compare(codec: MimiCodec, wave: np.ndarray, repeats: int) -> dict[str, float]:
    bare_encode(codec, wave)  # warm-up both paths (allocator, oneDNN kernels)
    codec.encode([wave])
    bare, wrapped, bare_cpu, wrapped_cpu = [], [], [], []
    threads = torch.get_num_threads()
    for _ in range(repeats):
        bare.append(timed(lambda: bare_encode(codec, wave)))
        wrapped.append(timed(lambda: codec.encode([wave])))
        torch.set_num_threads(1)
        bare_cpu.append(timed(lambda: bare_encode(codec, wave), time.process_time))
        wrapped_cpu.append(timed(lambda: codec.encode([wave]), time.process_time))
        torch.set_num_threads(threads)
    audio_seconds = len(wave) / codec.sample_rate
    bare_s, wrapped_s = min(bare), min(wrapped)
    return {
        "audio_seconds": audio_seconds,
        "bare_seconds_median": statistics.median(bare),
        "wrapper_seconds_median": statistics.median(wrapped),
        "bare_seconds": bare_s,
        "wrapper_seconds": wrapped_s,
        "bare_audio_seconds_per_second": audio_seconds / bare_s,
        "wrapper_audio_seconds_per_second": audio_seconds / wrapped_s,
        "bare_cpu_seconds_1_thread": min(bare_cpu),
        "wrapper_cpu_seconds_1_thread": min(wrapped_cpu),
        "wrapper_overhead": min(wrapped_cpu) / min(bare_cpu) - 1.0,
        "wrapper_overhead_wall": wrapped_s / bare_s - 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    from transformers import MimiConfig

    codec = MimiCodec.random(MimiConfig(), seed=0)
    params = sum(p.numel() for p in codec.model.parameters())
    rng = np.random.default_rng(0)
    # Whole frames, so the bare forward sees exactly the wrapper's (unpadded) input.
    samples = round(args.seconds * codec.frame_rate) * codec.samples_per_frame
    wave = (rng.standard_normal(samples) * 0.1).astype(np.float32)
    results = {
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "params": params,
        "repeats": args.repeats,
        "utterance": compare(codec, wave, args.repeats),
    }
    # A long recording: the wrapper streams it in 30 s chunks, the bare model takes it whole.
    long_wave = np.tile(wave, 6)
    results["long_recording_chunked"] = compare(codec, long_wave, args.repeats)
    for name in ("utterance", "long_recording_chunked"):
        r = results[name]
        bare, wrapped = r["bare_audio_seconds_per_second"], r["wrapper_audio_seconds_per_second"]
        print(
            f"{name:24s} {r['audio_seconds']:5.0f} s audio: bare {bare:6.1f} audio-s/s, "
            f"wrapper {wrapped:6.1f} audio-s/s, overhead {100 * r['wrapper_overhead']:+.1f}% "
            f"(1-thread CPU time), {100 * r['wrapper_overhead_wall']:+.1f}% (wall)"
        )
    atomic_write_json(RESULTS, results)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
