"""The sweep-proposals step: finished isoFLOP runs in, a verdict per budget and the runs to add out.

Output: ``{output_path}/proposals.json``::

    {"verdicts": [{budget, status, num_runs, best_hidden, runs_below, runs_above, fit_r2,
                   vertex_params, proposed: [{name, hidden, params, batch_size, steps}], notes}],
     "proposed": [{"budget": ..., "hidden": ...}],   # every run to add, in order
     "skipped": {reason: count}, "skipped_paths": {path: reason}}

An experiment file re-run after this step reads ``proposed`` and adds those runs as new training
steps (runs are rebuilt from (budget, width) by the same `SweepRules`, so a proposal is exactly the
run the rules would make); the executor skips every run that already succeeded.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import PROPOSALS_FILE
from soda_jax.scaling.adaptive import AdaptiveLimits, Observation, propose_round
from soda_jax.scaling.runs import read_runs
from soda_jax.scaling.sweep import SweepRules, SweepRun, plan_run

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SweepRunRef:
    """One finished run of a sweep: where it sits on the grid, and its training output."""

    budget: float
    """The run's target forward FLOPs."""
    hidden: int
    """Its model width."""
    path: str
    """Its training output directory (holding summary.json)."""


@dataclasses.dataclass(frozen=True)
class SweepProposalsConfig:
    """Inputs and settings of `propose_sweep_round`."""

    runs: tuple[SweepRunRef, ...]
    """Every run of the sweep so far (first grid and earlier proposals)."""
    rules: SweepRules
    """The sweep's rules: proposals follow them."""
    output_path: str
    """Where proposals.json goes."""
    limits: AdaptiveLimits = AdaptiveLimits()
    """When a budget counts as bracketed, and where the search past an edge stops."""


def propose_sweep_round(config: SweepProposalsConfig) -> dict[str, Any]:
    """Judge every budget from the finished runs and write the runs to add (proposals.json)."""
    refs = {ref.path: ref for ref in config.runs}
    loaded = read_runs(tuple(refs))
    observations = [
        Observation(budget=refs[r.path].budget, hidden=refs[r.path].hidden, params=r.params, loss=r.loss)
        for r in loaded.records
    ]
    verdicts = propose_round(config.rules, observations, config.limits)
    for verdict in verdicts:
        logger.info(
            "budget %.1e: %s (best d=%s, %d below, %d above), proposing %s%s",
            verdict.budget,
            verdict.status,
            verdict.best_hidden,
            verdict.runs_below,
            verdict.runs_above,
            [r.shape.hidden_dim for r in verdict.proposed] or "nothing",
            f"; {'; '.join(verdict.notes)}" if verdict.notes else "",
        )
    result = {
        "verdicts": [v.summary() for v in verdicts],
        "proposed": [{"budget": r.budget, "hidden": r.shape.hidden_dim} for v in verdicts for r in v.proposed],
        "skipped": loaded.skipped,
        "skipped_paths": loaded.skipped_paths,
    }
    fileio.atomic_write_json(fileio.join(config.output_path, PROPOSALS_FILE), result)
    return result


def proposed_runs(rules: SweepRules, proposals: dict[str, Any]) -> list[SweepRun]:
    """The `SweepRun`s a proposals.json asks for, rebuilt by ``rules``."""
    runs = []
    for entry in proposals.get("proposed", []):
        planned = plan_run(rules, float(entry["budget"]), rules.shape_for_hidden(int(entry["hidden"])))
        if not isinstance(planned, SweepRun):
            raise ValueError(
                f"proposal {entry} is dropped by these sweep rules ({planned.reason}): were the rules changed?"
            )
        runs.append(planned)
    return runs
