"""The machine's limits the benchmarks report against, and the load they ran under.

* `matmul_peak`: the attainable f32 FLOP/s (a large jit-compiled square ``jnp.dot``, best of
  several): the ceiling of compute-bound work (training steps, prefill, scoring);
* `memory_bandwidth`: the attainable bytes/s of a large array copy (read one array, write another,
  both far larger than the caches; best of several): the ceiling of memory-bound work
  (decoding a few sequences reads every weight once per token);
* `Load`: the 1-minute load average before and after a run. The machine is shared: a result taken
  when the load before it was above `COMPARABLE_LOAD` is marked not comparable (its ratios to peers
  measured in the same run still are, roughly).

Used by bench_train.py, bench_generate.py and bench_score.py.
"""

from __future__ import annotations

import dataclasses
import os
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
COMPARABLE_LOAD = 1.5
"""Load average (1 minute, before the run) above which the 2-core machine is busy with other work:
results are recorded but marked not comparable."""


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


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


@dataclasses.dataclass
class Load:
    """The load a benchmark ran under: `start` it before the runs, `finish` it after."""

    before: float = dataclasses.field(default_factory=load_average)
    """1-minute load average when the run started."""
    after: float | None = None
    """1-minute load average when it ended."""

    def finish(self) -> Load:
        self.after = load_average()
        return self

    @property
    def comparable(self) -> bool:
        """Whether the machine was idle enough (load before the run <= `COMPARABLE_LOAD`)."""
        return self.before <= COMPARABLE_LOAD

    def record(self) -> dict:
        """The JSON record: loads, the threshold, and whether the figures are comparable."""
        return {
            "load_before": self.before,
            "load_after": self.after,
            "cpus": os.cpu_count(),
            "comparable_load_limit": COMPARABLE_LOAD,
            "comparable": self.comparable,
        }

    def banner(self) -> str:
        """One line for the console."""
        verdict = "comparable" if self.comparable else f"NOT comparable (load above {COMPARABLE_LOAD} before the run)"
        after = "?" if self.after is None else f"{self.after:.2f}"
        return f"load average {self.before:.2f} before, {after} after: {verdict}"


def machine_limits(repeats: int = 2) -> dict:
    """Both ceilings, best of ``repeats`` measurements each: ``matmul_flops`` and ``memory_bytes_per_s``."""
    return {
        "matmul_flops": max(matmul_peak() for _ in range(repeats)),
        "memory_bytes_per_s": max(memory_bandwidth() for _ in range(repeats)),
    }
