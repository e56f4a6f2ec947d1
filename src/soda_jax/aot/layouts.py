"""Choosing a run's mesh and remat from compiled memory: the layout with the most headroom at no extra recomputation.

A layout is a (`ParallelismConfig`, remat on/off) pair. Each candidate is compiled for the run's
slice (`compile_report`); the choice, in order:

1. it fits a chip with the margin;
2. it recomputes nothing it need not: remat off beats remat on when both fit (remat runs every
   layer's forward a second time, ~1/3 more FLOPs); tensor parallelism recomputes nothing (it
   costs communication, which this rule does not weigh);
3. among those, the most HBM left per chip (budget less peak), which is what a longer sequence,
   a bigger batch or the runtime's own buffers can use.

``benchmarks/compile_final_runs.py`` applies it to SODA's final runs; `soda_jax.recipes.soda_models`
records the result as the catalogue default (README's TPU section has the table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from soda_jax.aot.check import compile_report
from soda_jax.training.config import TrainConfig
from soda_jax.training.parallelism import ParallelismConfig


@dataclasses.dataclass(frozen=True)
class Layout:
    """One way to lay a training step out on a slice."""

    parallelism: ParallelismConfig
    """The mesh: FSDP over the data axis, tensor parallelism over ``model``."""
    remat: bool
    """Gradient checkpointing of the scanned layers (their forward runs again in the backward pass)."""


def recomputes(report: dict[str, Any]) -> bool:
    """Whether a compiled step runs the layers' forward twice (remat of scanned layers)."""
    return bool(report["gradient_checkpointing"]) and report["layer_loop"] == "scan"


def headroom_gib(report: dict[str, Any]) -> float:
    """HBM per chip left under the budget (negative: does not fit)."""
    return report["memory"]["budget_gib"] - report["memory"]["peak_gib"]


def best_layout(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report of the layout to use (module docstring's rule); `ValueError` when none fits."""
    fitting = [r for r in reports if r["memory"]["fits"]]
    if not fitting:
        peaks = ", ".join(
            f"{r['tpu']} {r['mesh']} remat {'on' if r['gradient_checkpointing'] else 'off'}: "
            f"{r['memory']['peak_gib']:.1f} GiB"
            for r in reports
        )
        raise ValueError(f"no layout fits: {peaks}")
    least_recompute = min(recomputes(r) for r in fitting)
    return max((r for r in fitting if recomputes(r) == least_recompute), key=headroom_gib)


def compare_layouts(
    config: TrainConfig, tpu: str, layouts: Iterable[Layout], *, vocab_size: int
) -> list[dict[str, Any]]:
    """``config``'s step compiled for ``tpu`` with each of ``layouts`` (memory only: no FLOP count)."""
    return [
        compile_report(
            dataclasses.replace(config, parallelism=layout.parallelism, gradient_checkpointing=layout.remat),
            tpu,
            vocab_size=vocab_size,
            count_flops=False,
        )
        for layout in layouts
    ]
