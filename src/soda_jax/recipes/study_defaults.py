"""The steps every design-choice study is made of (experiments/study_*.py): one training run per arm,
its evaluation, and the study's analysis (`soda_jax.scaling.studies`; docs/design-studies.md).

    steps = study_steps("study-text-share", [(StudyArm("text-0", "0% text", 0.0), data_0), ...],
                        SODA_150M, SODA_TEXT_SHARE_RECIPE, title=..., eval_step_for=..., tpu="v5p-8")

gives ``checkpoints/{study}/{arm}``, ``evaluation/{study}/{arm}`` (when ``eval_step_for`` is given)
and ``analysis/{study}`` (``study.json``, ``study.png``), in that order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from soda_jax import fileio
from soda_jax.data.mixture import MixtureSpec
from soda_jax.execution import ExecutorStep, executor_main, output_path_of, this_output_path, versioned
from soda_jax.models import ModelShape
from soda_jax.recipes.defaults import default_train
from soda_jax.recipes.soda_data import SodaDataRoots, parse_roots
from soda_jax.recipes.soda_eval_sets import SodaEvalPlan, soda_eval_plan, soda_eval_step
from soda_jax.scaling.studies import (
    DEFAULT_STUDY_METRICS,
    STUDY_FILE,
    STUDY_PLOT,
    StudyAnalysisConfig,
    StudyArm,
    analyze_study,
    study_table,
)
from soda_jax.training import TrainRecipe


def default_study_analysis(
    name: str,
    arms: Sequence[StudyArm],
    train_steps: Sequence[ExecutorStep],
    eval_steps: Sequence[ExecutorStep | None] = (),
    *,
    title: str,
    axis_label: str = "",
    metrics: Sequence[str] = DEFAULT_STUDY_METRICS,
) -> ExecutorStep[StudyAnalysisConfig]:
    """``{name}``: the study's table and plot over its arms' runs (and evaluations, one to one; None:
    an arm without one). The arms and metrics are versioned; the title and axis label only label."""
    if len(train_steps) != len(arms) or (eval_steps and len(eval_steps) != len(arms)):
        raise ValueError(f"{len(arms)} arms need {len(arms)} training steps (and as many evaluations, or none)")
    return ExecutorStep(
        name=name,
        fn=analyze_study,
        config=StudyAnalysisConfig(
            title=title,
            arms=versioned(tuple(arms)),
            run_paths=tuple(output_path_of(step) for step in train_steps),  # type: ignore[misc]
            eval_paths=tuple("" if step is None else output_path_of(step) for step in eval_steps),  # type: ignore[misc]
            output_path=this_output_path(),
            metrics=versioned(tuple(metrics)),
            axis_label=axis_label,
        ),
        description=f"{title}: {len(arms)} arms",
    )


def study_steps(
    study: str,
    arms: Sequence[tuple[StudyArm, MixtureSpec]],
    model: ModelShape,
    recipe: TrainRecipe,
    *,
    title: str,
    axis_label: str = "",
    eval_step_for: Callable[[ExecutorStep], ExecutorStep] | None = None,
    metrics: Sequence[str] = DEFAULT_STUDY_METRICS,
    **train_options: Any,
) -> list[ExecutorStep]:
    """Every step of a study: ``model`` trained with ``recipe`` on each arm's data
    (``checkpoints/{study}/{arm}``; ``train_options``: `default_train`'s), each run evaluated by
    ``eval_step_for`` (None: no evaluation), then ``analysis/{study}``."""
    train_steps = [default_train(f"{study}/{arm.name}", data, model, recipe, **train_options) for arm, data in arms]
    eval_steps = [eval_step_for(step) for step in train_steps] if eval_step_for else []
    analysis = default_study_analysis(
        f"analysis/{study}",
        [arm for arm, _ in arms],
        train_steps,
        eval_steps,
        title=title,
        axis_label=axis_label,
        metrics=metrics,
    )
    return [*train_steps, *eval_steps, analysis]


def soda_study_evaluation(
    plan: SodaEvalPlan, keep: Callable[[Any], bool] | None = None
) -> Callable[[ExecutorStep], ExecutorStep] | None:
    """``evaluation/{study}/{arm}`` of each run: SODA's tasks in ``plan`` (those ``keep`` accepts), or
    None when no task is left (no set under ``$SODA_EVAL_ROOT``: the study compares held-out NLL only)."""
    if keep is not None:
        plan = dataclasses.replace(plan, tasks=tuple(task for task in plan.tasks if keep(task)))
    if not plan.tasks:
        return None
    return lambda step: soda_eval_step(step.name.removeprefix("checkpoints/"), step, plan)


def run_study(steps: list[ExecutorStep], description: str, argv: list[str]) -> None:
    """Run a study's steps (the analysis last) with the executor's command line, then print its table."""
    report = executor_main(steps, description=description, args=argv)
    if report is None:
        return
    analysis = report.output_paths[steps[-1].name]
    result = fileio.read_json_or_none(fileio.join(analysis, STUDY_FILE))
    if result is not None:
        print(f"\n{result['title']}\n{study_table(result['arms'], result['metrics'])}")
        print(f"  skipped: {result['skipped'] or 'none'}\n  plot: {fileio.join(analysis, STUDY_PLOT)}")


def run_soda_study(
    build: Callable[[SodaDataRoots, SodaEvalPlan], list[ExecutorStep]], description: str, argv: Sequence[str]
) -> None:
    """A SODA-scale study's command line: the corpus-root flags (`parse_roots`), then the executor's own;
    SODA's evaluation plan is printed before the steps run."""
    roots, _, executor_args = parse_roots(argv)
    plan = soda_eval_plan()
    print(plan.describe())
    run_study(build(roots, plan), description, executor_args)
