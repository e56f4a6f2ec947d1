"""Scaling-analysis step helper, for the lead to fold into experiments/defaults.py.

    analysis = default_scaling_analysis("analysis/isoflop-soda", train_steps, eval_steps=evals)
"""

from __future__ import annotations

from collections.abc import Sequence

from soda_jax.execution import ExecutorStep, output_path_of, this_output_path, versioned
from soda_jax.scaling.analysis import ScalingAnalysisConfig, analyze_scaling


def default_scaling_analysis(
    name: str,
    train_steps: Sequence[ExecutorStep],
    *,
    eval_steps: Sequence[ExecutorStep | None] = (),
    reference_train_steps: Sequence[ExecutorStep] = (),
    reference_eval_steps: Sequence[ExecutorStep | None] = (),
    num_bootstrap: int = 1000,
) -> ExecutorStep:
    """Fits and plots over a sweep's training runs (and their evals, in the same order; None = no eval).

    Training outputs are whole step directories (summary.json inside); eval outputs are step
    directories holding results.json.
    """
    if eval_steps and len(eval_steps) != len(train_steps):
        raise ValueError("eval_steps must match train_steps one to one (use None for a run without eval)")
    if reference_eval_steps and len(reference_eval_steps) != len(reference_train_steps):
        raise ValueError("reference_eval_steps must match reference_train_steps one to one")
    return ExecutorStep(
        name=name,
        fn=analyze_scaling,
        config=ScalingAnalysisConfig(
            run_paths=tuple(output_path_of(step) for step in train_steps),
            eval_paths=tuple("" if step is None else output_path_of(step) for step in eval_steps),
            reference_run_paths=tuple(output_path_of(step) for step in reference_train_steps),
            reference_eval_paths=tuple("" if step is None else output_path_of(step) for step in reference_eval_steps),
            output_path=this_output_path(),
            num_bootstrap=versioned(num_bootstrap),
        ),
        description=f"scaling fits over {len(train_steps)} runs",
    )
