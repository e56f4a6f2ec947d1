"""Where a run's wall time went: its training steps, its other steps, and the time outside any step.

Steps run concurrently, so shares are taken on the run's timeline, not by adding the steps' walls:

* ``training_s``: time in which some training step ran;
* ``other_steps_s``: time in which other steps ran and no training step did (data preparation, evaluation: the
  pipeline's own cost around the training);
* ``outside_steps_s``: time in which no step ran: Ray's start, the executor's bookkeeping between steps, and
  whatever the caller did after the run before asking (reports, a demo's generation).

The intervals are `StepTiming.started_at` .. ``+ wall_s`` of the steps this run executed (`RunReport.timings`);
steps skipped as already done take no time.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from soda_jax.execution.executor import RunReport


def covered_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


@dataclass(frozen=True)
class WallShares:
    """A run's wall time split on its timeline (module docstring)."""

    wall_s: float
    """From the run's start (`RunReport.started_at`) to the moment asked."""
    training_s: float
    """Some training step running."""
    other_steps_s: float
    """Other steps running, no training step."""

    @property
    def outside_steps_s(self) -> float:
        """No step running."""
        return max(0.0, self.wall_s - self.training_s - self.other_steps_s)

    def describe(self) -> str:
        def share(seconds: float) -> str:
            return f"{seconds:.1f}s ({seconds / self.wall_s:.0%})" if self.wall_s > 0 else f"{seconds:.1f}s"

        return (
            f"wall {self.wall_s:.1f}s: training {share(self.training_s)}, other steps {share(self.other_steps_s)}, "
            f"outside any step {share(self.outside_steps_s)} (Ray's start, reports)"
        )


def wall_shares(report: RunReport, training: Collection[str], ended_at: float | None = None) -> WallShares:
    """Split ``report``'s run from its start to ``ended_at`` (default: now); ``training``: the names of its
    training steps."""
    ended_at = time.time() if ended_at is None else ended_at

    def intervals(names: Iterable[str]) -> list[tuple[float, float]]:
        return [(report.timings[n].started_at, report.timings[n].started_at + report.timings[n].wall_s) for n in names]

    training_s = covered_seconds(intervals(n for n in report.timings if n in training))
    steps_s = covered_seconds(intervals(report.timings))
    return WallShares(
        wall_s=max(0.0, ended_at - report.started_at), training_s=training_s, other_steps_s=steps_s - training_s
    )
