"""Adaptive isoFLOP grids: decide per budget whether its optimum is bracketed, and propose runs if not.

A budget is **bracketed** when its best run (lowest validation loss) has at least
``min_runs_each_side`` runs of smaller and of larger models, and the loss-vs-log10 N parabola
through all its runs opens upwards, has its vertex inside the sampled sizes and explains at least
``min_fit_r2`` of the loss variance (R^2: noise around a flat curve scores near 0, a clean isoFLOP
valley near 1). Otherwise its minimum sits
at an edge (``edge_low``: the smallest models win, ``edge_high``: the largest do), or the fit is
poor (``poor_fit``: noisy runs; nothing is proposed, more data on the same sizes would not move an
edge) or there are too few runs to judge (``too_few``).

For an edge the next widths past it are proposed, stepping by the grid's own spacing and keeping the
sweep's rules (depth rule, batch and learning-rate rules, FLOP tolerance, batch >= min, step cap):
a width those rules drop is skipped and reported, and the search past an edge stops at the stated
limits (`AdaptiveLimits`), each stop recorded with its reason.

`centered_runs` builds a first grid around a prior law's N* instead of SODA's fixed 128..2048
widths, so fewer runs are spent far from the optimum; `simulate_rounds` replays the rounds against a
known loss function (tests, and sizing a sweep before paying for it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np

from soda_jax.scaling.fits import MIN_POINTS_PER_PARABOLA, PowerLaw, fit_parabola
from soda_jax.scaling.sweep import DroppedRun, SweepRules, SweepRun, plan_run

BudgetStatus = Literal["bracketed", "edge_low", "edge_high", "poor_fit", "too_few"]
Side = Literal["low", "high"]


@dataclasses.dataclass(frozen=True)
class AdaptiveLimits:
    """When to stop extending a grid past an edge."""

    min_runs_each_side: int = 2
    """Runs needed on each side of a budget's best run for it to count as bracketed."""
    min_fit_r2: float = 0.8
    """Smallest R^2 of the loss-vs-log10 N parabola for a bracket."""
    min_hidden: int = 64
    """Narrowest model worth training: below this a model is too small to mean anything."""
    max_hidden: int = 8192
    """Widest model the sweep may propose."""
    max_dropped_in_a_row: int = 3
    """Widths in a row the sweep rules drop before the search on that side gives up."""


@dataclasses.dataclass(frozen=True)
class Observation:
    """One finished run of a budget, as the bracket analysis needs it."""

    budget: float
    """The run's target forward FLOPs (its grid budget)."""
    hidden: int | None
    """Model width (None when a run's record does not say: the verdict is judged on N alone)."""
    params: float
    """Total parameters N."""
    loss: float
    """Final validation loss."""


@dataclasses.dataclass(frozen=True)
class BudgetVerdict:
    """What the analysis decided for one budget, and the runs it proposes."""

    budget: float
    """Target forward FLOPs."""
    status: BudgetStatus
    """See the module docstring."""
    num_runs: int
    """Finished runs at this budget."""
    best_hidden: int | None
    """Width of the lowest-loss run."""
    runs_below: int
    """Runs of smaller models than the best."""
    runs_above: int
    """Runs of larger models than the best."""
    fit_r2: float | None
    """R^2 of the loss-vs-log10 N parabola (None without a convex fit)."""
    vertex_params: float | None
    """N at the parabola's vertex (None without a convex fit)."""
    proposed: tuple[SweepRun, ...]
    """Runs to add (empty when bracketed or when a limit stopped the search)."""
    notes: tuple[str, ...]
    """Why the search stopped where it did, and widths the rules dropped."""

    def summary(self) -> dict:
        """Plain data for proposals.json and the dry run."""
        return {
            "budget": self.budget,
            "status": self.status,
            "num_runs": self.num_runs,
            "best_hidden": self.best_hidden,
            "runs_below": self.runs_below,
            "runs_above": self.runs_above,
            "fit_r2": self.fit_r2,
            "vertex_params": self.vertex_params,
            "proposed": [
                {
                    "name": r.name,
                    "hidden": r.shape.hidden_dim,
                    "params": r.params,
                    "batch_size": r.batch_size,
                    "steps": r.steps,
                }
                for r in self.proposed
            ],
            "notes": list(self.notes),
        }


def judge_budget(observations: Sequence[Observation], limits: AdaptiveLimits = AdaptiveLimits()) -> BudgetVerdict:
    """The status of one budget's runs (no proposals: see `propose_for_budget`)."""
    budget = observations[0].budget if observations else math.nan
    ordered = sorted(observations, key=lambda o: o.params)
    if len({o.params for o in ordered}) < MIN_POINTS_PER_PARABOLA:
        best = min(ordered, key=lambda o: o.loss) if ordered else None
        below = sum(o.params < best.params for o in ordered) if best else 0
        return BudgetVerdict(
            budget,
            "too_few",
            len(ordered),
            best.hidden if best else None,
            below,
            len(ordered) - below - (1 if best else 0),
            None,
            None,
            (),
            (),
        )
    best_index = int(np.argmin([o.loss for o in ordered]))
    below, above = best_index, len(ordered) - best_index - 1
    r2, vertex = _parabola_quality(ordered)
    if below < limits.min_runs_each_side:
        status: BudgetStatus = "edge_low"
    elif above < limits.min_runs_each_side:
        status = "edge_high"
    elif vertex is None or r2 is None or r2 < limits.min_fit_r2:
        status = "poor_fit"
    elif not ordered[0].params <= vertex <= ordered[-1].params:
        status = "edge_low" if vertex < ordered[0].params else "edge_high"
    else:
        status = "bracketed"
    return BudgetVerdict(budget, status, len(ordered), ordered[best_index].hidden, below, above, r2, vertex, (), ())


def _parabola_quality(ordered: Sequence[Observation]) -> tuple[float | None, float | None]:
    """(R^2, vertex N) of the loss-vs-log10 N parabola; Nones when it is not convex."""
    log_n = np.log10([o.params for o in ordered])
    loss = np.array([o.loss for o in ordered])
    try:
        parabola = fit_parabola(log_n, loss)
    except ValueError:
        return None, None
    total = float(np.sum((loss - loss.mean()) ** 2))
    residual = float(np.sum((parabola(log_n) - loss) ** 2))
    return (1.0 - residual / total if total > 0 else 1.0), float(10**parabola.x_min)


def propose_for_budget(
    rules: SweepRules, observations: Sequence[Observation], limits: AdaptiveLimits = AdaptiveLimits()
) -> BudgetVerdict:
    """`judge_budget`, plus the runs past an edge that would bracket it (within the limits)."""
    verdict = judge_budget(observations, limits)
    if verdict.status not in ("edge_low", "edge_high", "too_few"):
        return verdict
    if any(o.hidden is None for o in observations):
        raise ValueError(f"budget {verdict.budget:.2e}: proposing runs past an edge needs every run's width")
    tried = {o.hidden for o in observations if o.hidden is not None}
    proposed: list[SweepRun] = []
    notes: list[str] = []
    if verdict.status == "too_few":
        needs = {
            "low": limits.min_runs_each_side - verdict.runs_below,
            "high": limits.min_runs_each_side - verdict.runs_above,
        }
    elif verdict.status == "edge_low":
        needs = {"low": limits.min_runs_each_side - verdict.runs_below}
    else:
        needs = {"high": limits.min_runs_each_side - verdict.runs_above}
    for side, count in needs.items():
        runs, side_notes = _extend(rules, verdict.budget, tried, side, max(count, 1), limits)  # type: ignore[arg-type]
        proposed += runs
        notes += side_notes
    return dataclasses.replace(verdict, proposed=tuple(proposed), notes=tuple(notes))


def _extend(
    rules: SweepRules, budget: float, tried: set[int], side: Side, count: int, limits: AdaptiveLimits
) -> tuple[list[SweepRun], list[str]]:
    """Up to ``count`` kept runs past the ``side`` edge of the ``tried`` widths, and notes on the search."""
    step = rules.hidden_step_for(budget)
    direction = -1 if side == "low" else 1
    hidden = (min(tried) if side == "low" else max(tried)) + direction * step
    runs: list[SweepRun] = []
    notes: list[str] = []
    dropped_in_a_row = 0
    while len(runs) < count:
        if hidden < limits.min_hidden:
            notes.append(f"{side}: width floor reached (d < {limits.min_hidden} is too small to be meaningful)")
            break
        if hidden > limits.max_hidden:
            notes.append(f"{side}: width ceiling reached (d > {limits.max_hidden})")
            break
        planned = plan_run(rules, budget, rules.shape_for_hidden(hidden))
        if isinstance(planned, DroppedRun):
            notes.append(f"{side}: d={hidden} dropped by the sweep rules ({planned.reason})")
            dropped_in_a_row += 1
            if dropped_in_a_row >= limits.max_dropped_in_a_row:
                notes.append(f"{side}: stopped after {dropped_in_a_row} widths in a row dropped by the sweep rules")
                break
        elif hidden not in tried:
            runs.append(planned)
            dropped_in_a_row = 0
        hidden += direction * step
    return runs, notes


def group_observations(observations: Iterable[Observation]) -> dict[float, list[Observation]]:
    """Observations by budget, budgets ascending."""
    groups: dict[float, list[Observation]] = {}
    for o in sorted(observations, key=lambda o: o.budget):
        groups.setdefault(o.budget, []).append(o)
    return groups


def propose_round(
    rules: SweepRules, observations: Iterable[Observation], limits: AdaptiveLimits = AdaptiveLimits()
) -> list[BudgetVerdict]:
    """One verdict per budget with finished runs."""
    return [propose_for_budget(rules, group, limits) for group in group_observations(observations).values()]


# -------------------------------------------------------------------------- grids around a prior law


def centered_runs(
    rules: SweepRules,
    budget: float,
    prior: PowerLaw,
    *,
    runs_each_side: int = 2,
    limits: AdaptiveLimits = AdaptiveLimits(),
) -> list[SweepRun]:
    """Kept runs at ``budget`` around the prior's N* (``prior`` maps training FLOPs to N*):
    the width whose N is nearest N* in log, and ``runs_each_side`` kept widths on each side (the
    window slides inwards where the rules keep fewer widths on one side)."""
    step = rules.hidden_step_for(budget)
    first = max(limits.min_hidden, step)
    candidates = [plan_run(rules, budget, rules.shape_for_hidden(h)) for h in range(first, limits.max_hidden + 1, step)]
    kept = [run for run in candidates if isinstance(run, SweepRun)]
    if not kept:
        return []
    target = float(prior(kept[0].training_flops))
    center = int(np.argmin([abs(math.log(run.params / target)) for run in kept]))
    width = 2 * runs_each_side + 1
    start = min(max(0, center - runs_each_side), max(0, len(kept) - width))  # slide inside the kept widths
    return kept[start : start + width]


def centered_grid(
    rules: SweepRules, prior: PowerLaw, *, runs_each_side: int = 2, limits: AdaptiveLimits = AdaptiveLimits()
) -> list[SweepRun]:
    """`centered_runs` for every budget of ``rules``."""
    return [
        run
        for budget in rules.budgets
        for run in centered_runs(rules, budget, prior, runs_each_side=runs_each_side, limits=limits)
    ]


@dataclasses.dataclass(frozen=True)
class SimulatedSweep:
    """The outcome of `simulate_rounds`."""

    runs: tuple[SweepRun, ...]
    """Every run trained, first grid and proposals."""
    rounds: int
    """Proposal rounds that added runs."""
    verdicts: tuple[BudgetVerdict, ...]
    """The final verdict of every budget."""

    @property
    def all_bracketed(self) -> bool:
        return all(v.status == "bracketed" for v in self.verdicts)


def simulate_rounds(
    rules: SweepRules,
    first_grid: Sequence[SweepRun],
    loss_of: Callable[[SweepRun], float],
    *,
    limits: AdaptiveLimits = AdaptiveLimits(),
    max_rounds: int = 10,
) -> SimulatedSweep:
    """Run the adaptive rounds with ``loss_of`` standing in for training: how many runs a sweep needs."""
    runs = list(first_grid)
    rounds = 0
    while True:
        observations = [Observation(r.budget, r.shape.hidden_dim, r.params, loss_of(r)) for r in runs]
        verdicts = propose_round(rules, observations, limits)
        new = [run for v in verdicts for run in v.proposed]
        if not new or rounds == max_rounds:
            return SimulatedSweep(tuple(runs), rounds, tuple(verdicts))
        runs += new
        rounds += 1
