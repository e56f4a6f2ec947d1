"""Sweep runs map to real levanter configs; the analysis step runs under the executor."""

import dataclasses
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # the experiments package

from helpers_scaling import TRUE_LAW  # noqa: E402

from experiments.defaults import default_scaling_analysis  # noqa: E402
from soda_jax.execution import ExecutorMainConfig, ExecutorStep, run_experiment, this_output_path, versioned  # noqa: E402
from soda_jax.models import flops, qwen3_config  # noqa: E402
from soda_jax.scaling import sweep  # noqa: E402
from soda_jax.scaling.analysis import FITS_FILE  # noqa: E402


def test_sweep_runs_map_to_the_training_step_configs():
    run = next(r for r in sweep.isoflop_grid() if r.shape.hidden_dim == 768)
    config = qwen3_config(run.shape, run.seq_len)
    assert config.flops_per_token(run.vocab_size, run.seq_len) == run.flops_per_token
    assert flops.config_param_counts(config, run.vocab_size).total == run.params
    recipe = sweep.sweep_recipe(run)
    assert (recipe.seq_len, recipe.batch_size) == (run.seq_len, run.batch_size)
    assert recipe.num_train_steps == run.steps
    assert recipe.tokens == run.tokens and recipe.z_loss_weight == 0.0
    assert (recipe.optimizer.learning_rate, recipe.optimizer.beta2) == (run.learning_rate, run.beta2)
    assert recipe.optimizer.beta1 == sweep.SWEEP_OPTIMIZER.beta1 == 0.95
    optimizer = recipe.optimizer.levanter_config(run.batch_size, run.shape.hidden_dim)
    assert (optimizer.learning_rate, optimizer.beta2) == (run.learning_rate, run.beta2)
    assert optimizer.weight_decay == 0.1
    assert optimizer.adamc_weight_decay and optimizer.lr_schedule == "linear"


def test_sweep_train_step_is_the_project_training_step():
    from experiments.isoflop_sweep import sweep_train_step
    from soda_jax.training.train import train

    run = next(r for r in sweep.isoflop_grid() if r.shape.hidden_dim == 768)
    step = sweep_train_step(run, data="unused-data", tpu="v5p-8")
    assert step.name == f"checkpoints/isoflop/{run.name}" and step.fn is train
    assert step.config.model.value == run.shape
    assert step.config.recipe.value == sweep.sweep_recipe(run)
    assert step.config.gradient_checkpointing and step.resources.tpu == "v5p-8"
    tiny = sweep_train_step(run, data="unused-data", gradient_checkpointing=False)
    assert not tiny.config.gradient_checkpointing and tiny.resources.tpu is None


@dataclasses.dataclass(frozen=True)
class FakeTrainConfig:
    output_path: str
    params: int
    tokens: int
    train_flops: float


def write_law_summary(config: FakeTrainConfig) -> None:
    """Stands in for a training run: the summary.json a run would write, loss from TRUE_LAW."""
    os.makedirs(config.output_path, exist_ok=True)
    summary = {
        "params": config.params, "tokens": config.tokens, "train_flops": config.train_flops,
        "final_validation_loss": float(TRUE_LAW(config.params, config.tokens)),
    }
    with open(os.path.join(config.output_path, "summary.json"), "w") as f:
        json.dump(summary, f)


def test_analysis_step_runs_under_the_executor(tmp_path):
    runs = [r for r in sweep.isoflop_grid() if r.budget in (1e18, 3e18, 6e18)]
    train_steps = [
        ExecutorStep(
            name=f"checkpoints/{run.name}",
            fn=write_law_summary,
            config=FakeTrainConfig(this_output_path(), versioned(run.params), versioned(run.tokens),
                                   versioned(float(run.training_flops))),
        )
        for run in runs
    ]
    analysis_step = default_scaling_analysis("analysis/isoflop-test", train_steps, num_bootstrap=50)
    report = run_experiment([analysis_step], ExecutorMainConfig(prefix=str(tmp_path), local=True))
    assert set(report.statuses.values()) == {"SUCCESS"} and len(report.statuses) == len(runs) + 1
    (out,) = [p for p in report.statuses if "analysis/isoflop-test" in p]
    with open(os.path.join(out, FITS_FILE)) as f:
        fits = json.load(f)
    assert len(fits["runs"]) == len(runs) and not fits["skipped"]
    assert len(fits["compute_optimal"]["budgets"]) == 3
    assert np.isfinite(fits["parametric"]["law"]["alpha"])
    assert os.path.exists(os.path.join(out, "isoflop_curves.png"))


def test_eval_steps_must_pair_with_train_steps():
    step = ExecutorStep(name="checkpoints/x", fn=write_law_summary, config=FakeTrainConfig(this_output_path(), 1, 1, 1.0))
    with pytest.raises(ValueError, match="one to one"):
        default_scaling_analysis("analysis/x", [step], eval_steps=[None, None])


def test_mini_sweep_grid_supports_the_fits():
    from experiments.isoflop_mini import MINI_RULES

    grid = sweep.isoflop_grid(MINI_RULES)
    for budget in MINI_RULES.budgets:
        sizes = {run.shape.hidden_dim for run in grid if run.budget == budget}
        assert len(sizes) >= 3, budget  # a parabola per budget needs three sizes
    assert all(run.shape.num_layers >= 1 and run.batch_size >= 2 for run in grid)
    assert sum(run.tokens for run in grid) < 4e6  # ~15 minutes of training on a 2-core CPU
