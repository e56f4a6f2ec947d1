"""SODA's isoFLOP sweep (59 runs over forward budgets 1e18..1e20 = training 3e18..3e20) + analysis.

    python experiments/isoflop_sweep.py --print_grid          # the grid, nothing else
    python experiments/isoflop_sweep.py --prefix gs://bucket/soda --dry_run
    python experiments/isoflop_sweep.py --prefix gs://bucket/soda --rounds 3   # train, bracket, extend

Each run trains a catalogue-rule Qwen3 model (`SweepRules.shape_for_hidden`) on the SODA final mix
with the project's training step (`soda_jax.recipes.defaults.default_train`) and the sweep's recipe
(`soda_jax.scaling.sweep.sweep_recipe`: the run's own lr and beta2, Cautious, no z-loss); one
analysis step fits the laws and draws the plots. Every run is evaluated on SODA's benchmark set
(``evaluation/isoflop/<run>``, `soda_jax.recipes.soda_eval_sets`: whichever sets ``$SODA_EVAL_ROOT``
holds, the others skipped by name), and the analysis fits each benchmark against the held-out speech
NLL (SODA's capability curves; ``experiments/soda_final.py`` stars the final models on them). The
sweep is adaptive (`soda_jax.recipes.adaptive_sweep`): a proposals step judges every budget and,
where the optimum sits at the grid's edge (as it did at SODA's top budgets), the next run of this
file adds the widths past that edge. The data steps (raw corpora under ``$SODA_RAW_ROOT`` -> Mimi
codes -> token caches, `soda_jax.recipes.soda_data`) are the final runs' own, so the sweep and the
final runs share them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from soda_jax.execution import ExecutorStep, output_path_of, versioned
from soda_jax.recipes.adaptive_sweep import AdaptiveSweep, build_state, run_adaptive_sweep
from soda_jax.recipes.defaults import default_scaling_analysis, default_train
from soda_jax.recipes.soda_data import soda_final_data
from soda_jax.recipes.soda_eval_sets import (
    SODA_CAPABILITY_METRICS,
    SodaEvalPlan,
    soda_eval_plan,
    soda_eval_step,
)
from soda_jax.scaling.sweep import SweepRules, SweepRun, format_grid, isoflop_grid, stable_chain, sweep_recipe
from soda_jax.training.branching import check_branch, stable_prefix_steps

logger = logging.getLogger(__name__)

SWEEP_ANALYSIS = "analysis/isoflop-soda"
"""The sweep's analysis step (and, with ``-proposals``, its proposals steps)."""
SWEEP_RULES = SweepRules()
"""SODA's rules and budgets (see soda_jax.scaling.sweep)."""
SWEEP_SLICES = ("v5p-8", "v5p-16", "v5p-32", "v5p-64")
"""Where each sweep run may go: the smallest of these its compiled step fits (the pre-flight
compile on the driver, `soda_jax.aot.preflight.SmallestFittingSlice`), not a size heuristic."""
PRINT_GRID_FLAG = "--print_grid"


def sweep_train_step(run: SweepRun, data, *, tpu: str | Sequence[str] | None = None, **options: Any) -> ExecutorStep:
    """The training step of one sweep run (``checkpoints/isoflop/<run name>``).

    ``tpu``: the slice to place it on, or slice types to take the smallest that fits of (None:
    wherever the executor runs it; `default_train`). ``options``: further
    `default_train` / `TrainConfig` settings, e.g. ``gradient_checkpointing=False`` for tiny CPU models.
    """
    return default_train(f"isoflop/{run.name}", data, run.shape, sweep_recipe(run), tpu=tpu, **options)


class BranchedSweepSteps:
    """The training steps of a sweep whose runs of one width branch off one another (docs/scaling.md).

    With a fixed warmup (`SweepRules.warmup_steps`) a width's runs take identical steps until each
    one's decay begins, so a run at budget C_i is trained as its width's chain of *stable segments*
    (`stable_chain`: one per budget up to C_i, each continuing the last and stopping where that
    budget's decay starts, ``checkpoints/isoflop-stable/<run>``) followed by its own decay
    (``checkpoints/isoflop/<run>``, `soda_jax.training.branching`). A width's runs then cost its
    longest stable phase plus one decay each, instead of every run from scratch. Segments are made
    once and shared: the executor trains each one once, before the runs that need it.
    """

    def __init__(self, rules: SweepRules, data, **options: Any):
        """``options``: further `default_train` / `TrainConfig` settings of every step."""
        self.rules = rules
        self.data = data
        self.options = options
        self._segments: dict[str, ExecutorStep] = {}

    def __call__(self, run: SweepRun) -> ExecutorStep:
        """``run``'s training step: its last stable segment, then its decay."""
        return sweep_train_step(run, self.data, resume_from=output_path_of(self.segment(run)), **self.options)

    def segment(self, run: SweepRun) -> ExecutorStep:
        """The stable segment that ends where ``run``'s decay starts (continuing the one before it)."""
        if run.name not in self._segments:
            chain = stable_chain(self.rules, run)
            previous = self.segment(chain[-2]) if len(chain) > 1 else None
            recipe = sweep_recipe(run)
            stop = stable_prefix_steps(recipe, run.shape.hidden_dim)
            if previous is not None:  # fail here, not hours into the sweep, when the rules cannot branch
                source = chain[-2]
                check_branch(
                    sweep_recipe(source),
                    source.shape,
                    recipe,
                    run.shape,
                    stable_prefix_steps(sweep_recipe(source), source.shape.hidden_dim),
                    where=f"segment {run.name}",
                )
            self._segments[run.name] = default_train(
                f"isoflop-stable/{run.name}",
                self.data,
                run.shape,
                recipe,
                stop_at_step=versioned(stop),
                resume_from=None if previous is None else output_path_of(previous),
                **{**self.options, "export_hf": False},
            )
        return self._segments[run.name]


def sweep_eval_step(train_step: ExecutorStep, plan: SodaEvalPlan) -> ExecutorStep:
    """``evaluation/isoflop/<run>``: SODA's benchmark set (``plan``) on a sweep run's final checkpoint."""
    return soda_eval_step(train_step.name.removeprefix("checkpoints/"), train_step, plan)


def build_sweep(
    data,
    rules: SweepRules = SWEEP_RULES,
    name: str = SWEEP_ANALYSIS,
    *,
    tpu: str | Sequence[str] | None = SWEEP_SLICES,
    num_bootstrap: int = 1000,
    plan: SodaEvalPlan | None = None,
    **options: Any,
) -> list[ExecutorStep]:
    """Every training step of the sweep, their evaluations (SODA's sets that ``plan``, by default
    `soda_eval_plan()`, finds; none when it finds none), then the analysis step over them (last)."""
    plan = plan or soda_eval_plan()
    train_steps = [sweep_train_step(run, data, tpu=tpu, **options) for run in isoflop_grid(rules)]
    eval_steps = [sweep_eval_step(step, plan) for step in train_steps] if plan.tasks else []
    analysis = default_scaling_analysis(
        name,
        train_steps,
        eval_steps=eval_steps,
        num_bootstrap=num_bootstrap,
        capability_metrics=SODA_CAPABILITY_METRICS,
    )
    return [*train_steps, *eval_steps, analysis]


def soda_adaptive_sweep(
    data,
    rules: SweepRules = SWEEP_RULES,
    *,
    tpu: str | Sequence[str] | None = SWEEP_SLICES,
    plan: SodaEvalPlan | None = None,
    **options: Any,
) -> AdaptiveSweep:
    """SODA's grid as round 0 of an adaptive sweep, every run trained on ``data`` and evaluated on
    ``plan``'s tasks (default: `soda_eval_plan()`; no evaluations when it finds no set)."""
    plan = plan or soda_eval_plan()
    return AdaptiveSweep(
        name=SWEEP_ANALYSIS,
        rules=rules,
        first_grid=tuple(isoflop_grid(rules)),
        train_step_for=lambda run: sweep_train_step(run, data, tpu=tpu, **options),
        eval_step_for=(lambda step: sweep_eval_step(step, plan)) if plan.tasks else None,
        capability_metrics=SODA_CAPABILITY_METRICS,
    )


def sweep_runs_so_far(sweep: AdaptiveSweep, prefix: str | None) -> tuple[list[ExecutorStep], list[ExecutorStep]]:
    """The training and evaluation steps of every run the sweep holds under ``prefix`` (its first grid
    plus what its finished proposal rounds added; the first grid alone without a prefix)."""
    runs = build_state(sweep, prefix).runs if prefix else sweep.first_grid
    train_steps = [sweep.train_step_for(run) for run in runs]
    eval_steps = [sweep.eval_step_for(step) for step in train_steps] if sweep.eval_step_for else []
    return train_steps, eval_steps


def soda_mix_data():
    """The SODA final mix over its token-cache steps (`soda_jax.recipes.soda_data.soda_final_data`)."""
    return soda_final_data()


def main(argv: list[str]) -> None:
    print(format_grid(isoflop_grid(SWEEP_RULES)))
    if PRINT_GRID_FLAG in argv:
        return
    plan = soda_eval_plan()
    print(plan.describe())
    run_adaptive_sweep(soda_adaptive_sweep(soda_mix_data(), plan=plan), argv, description="SODA isoFLOP sweep")
