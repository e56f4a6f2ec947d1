"""Sweep runs map to real levanter configs; the analysis step runs under the executor."""

import dataclasses
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # the experiments package

from helpers_scaling import TRUE_LAW, heldout_section  # noqa: E402

from soda_jax.execution import ExecutorMainConfig, ExecutorStep, run_experiment, this_output_path, versioned  # noqa: E402
from soda_jax.models import flops, qwen3_config  # noqa: E402
from soda_jax.recipes.defaults import default_scaling_analysis  # noqa: E402
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
    from soda_jax.recipes.isoflop_sweep import sweep_train_step
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
        "params": config.params,
        "tokens": config.tokens,
        "train_flops": config.train_flops,
        "final_validation_loss": float(TRUE_LAW(config.params, config.tokens)),
        "heldout_nll": heldout_section(TRUE_LAW(config.params, config.tokens)),
    }
    with open(os.path.join(config.output_path, "summary.json"), "w") as f:
        json.dump(summary, f)


def test_analysis_step_runs_under_the_executor(tmp_path):
    runs = [r for r in sweep.isoflop_grid() if r.budget in (1e18, 3e18, 6e18)]
    train_steps = [
        ExecutorStep(
            name=f"checkpoints/{run.name}",
            fn=write_law_summary,
            config=FakeTrainConfig(
                this_output_path(), versioned(run.params), versioned(run.tokens), versioned(float(run.training_flops))
            ),
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
    step = ExecutorStep(
        name="checkpoints/x", fn=write_law_summary, config=FakeTrainConfig(this_output_path(), 1, 1, 1.0)
    )
    with pytest.raises(ValueError, match="one to one"):
        default_scaling_analysis("analysis/x", [step], eval_steps=[None, None])


def test_mini_sweep_grid_follows_its_rules():
    from soda_jax.audio.vocab import MIMI_CODEBOOKS, SPECIAL_TOKENS
    from soda_jax.recipes.isoflop_mini import (
        MINI_FIRST_GRID,
        MINI_LIMITS,
        MINI_PRIOR,
        MINI_RULES,
        MINI_TEXT_VOCAB,
        MINI_VOCAB_SIZE,
        mini_text_tokenizer,
    )

    assert mini_text_tokenizer.config.vocab_size.value == MINI_TEXT_VOCAB
    assert MINI_RULES.vocab_size == MINI_VOCAB_SIZE == MINI_TEXT_VOCAB + len(SPECIAL_TOKENS) + MIMI_CODEBOOKS * 2048
    grid = MINI_FIRST_GRID
    assert len(MINI_RULES.budgets) >= 4
    for budget in MINI_RULES.budgets:
        runs = [run for run in grid if run.budget == budget]
        # five sizes per budget (two each side of the prior's N*): a bracket needs two on each side of the best
        assert len({run.shape.hidden_dim for run in runs}) == 5, budget
        assert runs == sorted(runs, key=lambda run: run.params)
        best_guess = min(runs, key=lambda run: abs(np.log(run.params / MINI_PRIOR(run.training_flops))))
        assert (
            best_guess in runs[2:3] or runs[0].shape.hidden_dim == MINI_LIMITS.min_hidden
        )  # centred, or slid in at the floor
        assert {(run.batch_size, run.shape.num_layers, run.shape.num_heads) for run in runs} == {
            (MINI_RULES.fixed_batch_size, MINI_RULES.fixed_num_layers, MINI_RULES.fixed_num_heads)
        }
        for run in runs:  # SODA's rules, rescaled: FLOPs on budget, lr and beta2 from the batch
            assert abs(run.forward_flops - budget) <= MINI_RULES.flop_tolerance * budget
            assert run.batch_size >= MINI_RULES.min_batch_size and run.steps < MINI_RULES.max_steps
            rule_lr = MINI_RULES.lr_constant * run.batch_size**0.5 / run.shape.hidden_dim
            assert run.learning_rate == pytest.approx(min(rule_lr, MINI_RULES.max_learning_rate))  # clipped at the cap
            assert run.shape == MINI_RULES.shape_for_hidden(run.shape.hidden_dim) and run.shape.num_layers >= 1
            assert MINI_LIMITS.min_hidden <= run.shape.hidden_dim <= MINI_LIMITS.max_hidden
    # The first round's cost stays near what was measured (docs/scaling.md, the tenth sweep): 9.0e13
    # training FLOPs as separate runs (4.4e13 trained, branched) in 22 minutes with the demo beside it.
    assert sum(run.training_flops for run in grid) < 1.0e14


def test_mini_sweep_evaluates_every_run_and_fits_capabilities():
    from soda_jax.eval.step import run_eval
    from soda_jax.recipes.isoflop_mini import MINI_CAPABILITY_METRICS, MINI_FIRST_GRID, build_mini_sweep
    from soda_jax.training.train import train

    steps = build_mini_sweep()
    trains = [s for s in steps if s.fn is train]
    evals = [s for s in steps if s.fn is run_eval]
    assert len(trains) == len(evals) == len(MINI_FIRST_GRID)
    assert [e.name.removeprefix("evaluation/") for e in evals] == [t.name.removeprefix("checkpoints/") for t in trains]
    analysis = steps[-1].config
    assert len(analysis.eval_paths) == len(analysis.run_paths) == len(trains)
    assert analysis.capability_metrics.value == MINI_CAPABILITY_METRICS


def test_mini_sweep_tokenizer_gives_the_vocabulary_its_rules_count(tmp_path):
    from soda_jax.audio.vocab import AudioTextVocab
    from soda_jax.data.tokenizer_steps import TrainBpeConfig, train_bpe_tokenizer
    from soda_jax.recipes.isoflop_mini import MINI_VOCAB_SIZE, mini_text_tokenizer

    config = mini_text_tokenizer.config
    train_bpe_tokenizer(TrainBpeConfig(str(tmp_path / "bpe"), config.texts.value, config.vocab_size.value))
    vocab = AudioTextVocab.from_pretrained(str(tmp_path / "bpe"))
    assert vocab.size == MINI_VOCAB_SIZE  # the sweep's FLOP and parameter counts use this size
    assert vocab.decode_text(vocab.encode_text("The quick brown fox.")) == "The quick brown fox."
    with pytest.raises(ValueError, match="no texts"):
        train_bpe_tokenizer(TrainBpeConfig(str(tmp_path / "empty"), ()))
