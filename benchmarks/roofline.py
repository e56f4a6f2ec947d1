"""The machine's limits the benchmarks report against: its matmul peak and its memory bandwidth.

* `matmul_peak`: the attainable f32 FLOP/s (a large jit-compiled square ``jnp.dot``, best of
  several): the ceiling of compute-bound work (training steps, prefill, scoring);
* `memory_bandwidth`: the attainable bytes/s of a large array copy (read one array, write another,
  both far larger than the caches; best of several): the ceiling of memory-bound work
  (decoding a few sequences reads every weight once per token).

Used by bench_train.py, bench_generate.py and bench_score.py (the load they ran under is
`result_files.Load`).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

MATMUL_SIZE = 4096
"""Side of the square f32 matrices of the matmul peak (large enough to be compute bound)."""
MATMUL_REPEATS = 10
"""Timed matmuls per peak measurement (the best is kept)."""
COPY_BYTES = 512 * 2**20
"""Bytes of the array the bandwidth pass reads (and of the one it writes): far beyond any cache."""
COPY_REPEATS = 10
"""Timed passes per bandwidth measurement (the best is kept)."""


def matmul_peak() -> float:
    """Best f32 FLOP/s of a jit-compiled square matmul."""
    a = jnp.ones((MATMUL_SIZE, MATMUL_SIZE), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, a).block_until_ready()
    best = float("inf")
    for _ in range(MATMUL_REPEATS):
        start = time.perf_counter()
        dot(a, a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * MATMUL_SIZE**3 / best


def memory_bandwidth() -> float:
    """Best bytes/s (read + written) of a copy of a `COPY_BYTES` array into another: numpy's copy, or a
    jit-compiled in-place pass (``x + 1`` on a donated buffer), whichever is faster."""
    source, target = np.ones(COPY_BYTES // 4, np.float32), np.zeros(COPY_BYTES // 4, np.float32)
    step = jax.jit(lambda x: x + 1.0, donate_argnums=0)
    device = step(jnp.ones((COPY_BYTES // 4,), jnp.float32)).block_until_ready()
    best = float("inf")
    for _ in range(COPY_REPEATS):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
        start = time.perf_counter()
        device = step(device).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * COPY_BYTES / best


def machine_limits(repeats: int = 2) -> dict:
    """Both ceilings, best of ``repeats`` measurements each: ``matmul_flops`` and ``memory_bytes_per_s``."""
    return {
        "matmul_flops": max(matmul_peak() for _ in range(repeats)),
        "memory_bytes_per_s": max(memory_bandwidth() for _ in range(repeats)),
    }
