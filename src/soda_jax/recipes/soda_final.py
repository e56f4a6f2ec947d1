"""SODA's final runs: the four catalogue models on SODA's data mix (seq 4096, batch 512, 500B tokens),
each evaluated on SODA's benchmark set, and starred on the isoFLOP sweep's capability curves.

    python experiments/soda_final.py --prefix gs://BUCKET/soda [--dry_run]     # all four, and the analysis
    python experiments/soda_final.py --prefix gs://BUCKET/soda --run_only 'soda-'  # the four and their evaluations only
    python experiments/soda_600m.py --prefix gs://BUCKET/soda                  # one

Every model trains on its TPU slice (`SODA_TPU_SLICES`) with its mesh (`SODA_PARALLELISM`); the data
steps (experiments/soda_data.py) are shared, so they run once for all of them. ``evaluation/soda-{size}``
runs SODA's tasks on the sets ``$SODA_EVAL_ROOT`` holds (`soda_jax.recipes.soda_eval_sets`; a missing set is
skipped by name). ``analysis/isoflop-soda-finals`` is the sweep's analysis
(``experiments/isoflop_sweep.py``: its runs and evaluations under the same prefix, as far as its
proposal rounds have gone) with the four final models as reference runs: the stars on every
capability plot, beside SODA's reported numbers. It needs the sweep's runs, so without ``--run_only``
the executor also trains whatever of the sweep has not run.
"""

from __future__ import annotations

from soda_jax.execution import ExecutorStep, run_experiment
from soda_jax.recipes.adaptive_sweep import executor_config
from soda_jax.recipes.defaults import default_scaling_analysis, default_train
from soda_jax.recipes.isoflop_sweep import soda_adaptive_sweep, sweep_runs_so_far
from soda_jax.recipes.soda_data import soda_final_data
from soda_jax.recipes.soda_eval_sets import (
    SODA_CAPABILITY_METRICS,
    SodaEvalPlan,
    soda_eval_plan,
    soda_eval_step,
)
from soda_jax.recipes.soda_models import SODA_FINAL_RECIPE, SODA_MODELS, SODA_PARALLELISM, SODA_TPU_SLICES

STEPS_PER_EVAL = 1000
"""Validation loss every 1000 steps (~2B tokens)."""
FINALS_ANALYSIS = "analysis/isoflop-soda-finals"
"""The sweep's analysis with the final runs as its reference runs."""


def soda_final_run(size: str) -> ExecutorStep:
    """``checkpoints/soda-{size}``: SODA's final run of the catalogue model ``size`` ("135m" .. "4b")."""
    shape = SODA_MODELS[size]
    return default_train(
        f"soda-{size}",
        soda_final_data(),
        shape,
        SODA_FINAL_RECIPE,
        tpu=SODA_TPU_SLICES[shape],
        parallelism=SODA_PARALLELISM[shape],
        steps_per_eval=STEPS_PER_EVAL,
    )


def soda_final_steps(prefix: str | None = None, plan: SodaEvalPlan | None = None) -> list[ExecutorStep]:
    """The four final runs, their evaluations (``plan``, default `soda_eval_plan()`), and the analysis
    of the sweep's runs under ``prefix`` (`sweep_runs_so_far`) with the finals as reference runs (last)."""
    plan = plan or soda_eval_plan()
    runs = [soda_final_run(size) for size in SODA_MODELS]
    evaluations = (
        [soda_eval_step(run.name.removeprefix("checkpoints/"), run, plan) for run in runs] if plan.tasks else []
    )
    sweep = soda_adaptive_sweep(soda_final_data(), plan=plan)
    sweep_train, sweep_eval = sweep_runs_so_far(sweep, prefix)
    analysis = default_scaling_analysis(
        FINALS_ANALYSIS,
        sweep_train,
        eval_steps=sweep_eval,
        num_bootstrap=sweep.num_bootstrap,
        capability_metrics=SODA_CAPABILITY_METRICS,
        bracket_limits=sweep.limits,
        reference_train_steps=runs,
        reference_eval_steps=evaluations,
    )
    return [*runs, *evaluations, analysis]


def main(argv: list[str]) -> None:
    config = executor_config(argv)
    plan = soda_eval_plan()
    print(plan.describe())
    run_experiment(
        soda_final_steps(config.prefix, plan),
        config,
        "SODA final runs (135M, 600M, 1.7B, 4B), their evaluations, the sweep's capability curves",
    )
