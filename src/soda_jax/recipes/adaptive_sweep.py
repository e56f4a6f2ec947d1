"""Adaptive isoFLOP sweeps as experiment files: a first grid, then the runs each proposals step asks for.

Each executor run of a sweep trains its current runs and runs one proposals step over them
(`soda_jax.recipes.defaults.default_sweep_proposals`). Building the sweep again reads that step's
``proposals.json`` (when it has succeeded) and adds the proposed runs as new training steps, then a
new proposals step over all of them, and so on through every finished round: so re-running the
experiment file continues the sweep, and the executor skips whatever already succeeded.

    python experiments/isoflop_sweep.py --prefix P --rounds 3    # up to 3 executor runs
    python experiments/isoflop_sweep.py --prefix P --dry_run     # what the next run adds, and why
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import draccus

from soda_jax import fileio
from soda_jax.execution import (
    STATUS_SUCCESS,
    Executor,
    ExecutorMainConfig,
    ExecutorStep,
    RunReport,
    run_experiment,
)
from soda_jax.execution.main import normalize_argv, pop_option
from soda_jax.execution.status import read_status
from soda_jax.recipes.defaults import default_scaling_analysis, default_sweep_proposals
from soda_jax.scaling.adaptive import AdaptiveLimits
from soda_jax.scaling.proposals import PROPOSALS_FILE, proposed_runs
from soda_jax.scaling.runs import DEFAULT_FITTED_LOSS
from soda_jax.scaling.sweep import SweepRules, SweepRun

ROUNDS_FLAG = "--rounds"


@dataclasses.dataclass(frozen=True)
class AdaptiveSweep:
    """How to build one adaptive sweep."""

    name: str
    """Names the proposals (``{name}-proposals``) and analysis (``{name}``) steps, e.g. ``analysis/isoflop-mini``."""
    rules: SweepRules
    """The sweep's rules: the first grid and every proposal follow them."""
    first_grid: tuple[SweepRun, ...]
    """Round 0's runs (SODA's grid, or one centred on a prior law)."""
    train_step_for: Callable[[SweepRun], ExecutorStep]
    """The training step of a run (deterministic: the same run gives the same step version)."""
    limits: AdaptiveLimits = AdaptiveLimits()
    """Bracketing and stopping rules (the analysis fits N* and D* through the budgets they call bracketed)."""
    num_bootstrap: int = 1000
    """Bootstrap resamples of the analysis step."""
    with_analysis: bool = True
    """Run the scaling analysis (fits, plots) over each round's runs, after its proposals step."""
    eval_step_for: Callable[[ExecutorStep], ExecutorStep] | None = None
    """The evaluation step of a run's training step (its results feed the capability fits); None: no evaluations."""
    capability_metrics: tuple[str, ...] = ()
    """Eval metrics the analysis fits against loss (empty: every numeric metric)."""
    references: tuple[tuple[ExecutorStep, ExecutorStep | None], ...] = ()
    """(training step, evaluation step or None) of runs outside the grid (larger or longer ones, as
    SODA's final models were) that the analysis stars on its capability plots; they run with round 0."""
    fitted_loss: str = DEFAULT_FITTED_LOSS
    """The loss the analysis fits (`soda_jax.scaling.runs.fitted_loss_names`)."""


@dataclasses.dataclass(frozen=True)
class SweepState:
    """The sweep as far as finished proposal rounds take it."""

    runs: tuple[SweepRun, ...]
    """Every run to train now: the first grid plus all proposals read so far."""
    steps: tuple[ExecutorStep, ...]
    """Their training steps, the current proposals step, their evaluation steps (if any), the
    reference runs' steps and the analysis step (last, if any)."""
    proposals_step: ExecutorStep
    """The proposals step over ``runs`` (not yet run, or run and proposing nothing)."""
    rounds_applied: int
    """Proposal rounds whose runs are among ``runs``."""
    settled: bool
    """The current proposals step ran and asked for nothing more."""
    last_proposals: dict | None
    """The newest proposals.json read (None before the first proposals step has run)."""


def build_state(sweep: AdaptiveSweep, prefix: str) -> SweepState:
    """Walk the finished proposal rounds under ``prefix`` and return the steps of the next run."""
    runs = list(sweep.first_grid)
    rounds, last = 0, None
    while True:
        train_steps = [sweep.train_step_for(run) for run in runs]
        eval_steps = [sweep.eval_step_for(step) for step in train_steps] if sweep.eval_step_for else []
        proposals = default_sweep_proposals(
            f"{sweep.name}-proposals", runs, train_steps, sweep.rules, limits=sweep.limits
        )
        references = [step for pair in sweep.references for step in pair if step is not None]
        analysis = (
            [
                default_scaling_analysis(
                    sweep.name,
                    train_steps,
                    eval_steps=eval_steps,
                    num_bootstrap=sweep.num_bootstrap,
                    capability_metrics=sweep.capability_metrics,
                    bracket_limits=sweep.limits,
                    reference_train_steps=[train for train, _ in sweep.references],
                    reference_eval_steps=[evaluation for _, evaluation in sweep.references]
                    if any(evaluation is not None for _, evaluation in sweep.references)
                    else [],
                    fitted_loss=sweep.fitted_loss,
                )
            ]
            if sweep.with_analysis
            else []
        )
        done = _read_finished(proposals, prefix)
        known = {run.name for run in runs}
        new = [run for run in proposed_runs(sweep.rules, done) if run.name not in known] if done else []
        if not new:
            state_steps = (*train_steps, proposals, *eval_steps, *references, *analysis)
            return SweepState(
                tuple(runs), state_steps, proposals, rounds, settled=done is not None, last_proposals=done or last
            )
        runs += new
        rounds, last = rounds + 1, done


def _read_finished(step: ExecutorStep, prefix: str) -> dict | None:
    """The proposals.json of ``step`` under ``prefix`` if the step has succeeded."""
    executor = Executor(prefix, use_ray=False)
    executor.prepare([step])
    path = executor.output_path(step)
    status = read_status(path)
    if status is None or status.status != STATUS_SUCCESS:
        return None
    return fileio.read_json(fileio.join(path, PROPOSALS_FILE))


def describe(state: SweepState) -> str:
    """What the sweep holds and what its proposals said, for the console."""
    lines = [
        f"adaptive sweep: {len(state.runs)} runs after {state.rounds_applied} proposal round(s)"
        + (", every budget settled" if state.settled else "")
    ]
    for verdict in (state.last_proposals or {}).get("verdicts", []):
        added = ", ".join(f"d={p['hidden']}" for p in verdict["proposed"]) or "nothing"
        notes = f" ({'; '.join(verdict['notes'])})" if verdict["notes"] else ""
        lines.append(
            f"  budget {verdict['budget']:.1e}: {verdict['status']:<10s} best d={verdict['best_hidden']}, "
            f"{verdict['runs_below']} below / {verdict['runs_above']} above; adds {added}{notes}"
        )
    if not state.settled:
        lines.append("  next: train the runs above, then judge every budget again (proposals step)")
    return "\n".join(lines)


def pop_rounds(argv: Sequence[str], default: int = 1) -> tuple[int, list[str]]:
    """``--rounds N`` out of an experiment's command line (the rest goes to the executor)."""
    value, rest = pop_option(argv, ROUNDS_FLAG)
    if value is None:
        return default, rest
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"{ROUNDS_FLAG} takes a whole number >= 1")
    return int(value), rest


def executor_config(executor_args: Sequence[str]) -> ExecutorMainConfig:
    """The executor's command line (``--prefix`` or ``$SODA_PREFIX`` required)."""
    config = draccus.parse(ExecutorMainConfig, args=normalize_argv(list(executor_args)))
    return dataclasses.replace(config, prefix=config.output_prefix())


def run_adaptive_sweep(
    sweep: AdaptiveSweep, argv: Sequence[str], description: str, with_steps: Sequence[ExecutorStep] = ()
) -> tuple[SweepState, RunReport | None]:
    """Run up to ``--rounds`` executor runs of the sweep (each: train, then propose); ``--dry_run``
    prints what the next run would do and runs nothing. ``with_steps``: other steps to run alongside
    (the demo's model, say), so that they share the cores with the sweep's first round instead of
    running before it. Returns the sweep's state and the last executor run's report."""
    rounds, executor_args = pop_rounds(argv)
    config = executor_config(executor_args)
    prefix = config.output_prefix()
    state = build_state(sweep, prefix)
    report = None
    for _ in range(rounds):
        print(describe(state))
        # a settled sweep's steps run too: the executor skips what succeeded, so only a step whose
        # version changed since (say, the analysis's settings) runs
        report = run_experiment([*with_steps, *state.steps], config, description)
        if config.dry_run or state.settled:
            return state, report
        state = build_state(sweep, prefix)
    print(describe(state))
    return state, report
