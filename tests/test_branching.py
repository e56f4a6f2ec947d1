"""Branching runs off one another's warmup-stable prefix (soda_jax.training.branching): a run trained
as a chain of stable segments and then its decay is the run trained straight through; branches
whose schedules differ are refused; the sweep plans each width's chain from its rules alone."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from helpers_training import tiny_config, write_test_cache

from soda_jax.data.mixture import soda_mixture
from soda_jax.models import TEST_TINY
from soda_jax.scaling.sweep import SweepRules, run_for_shape, runs_for_budget, stable_chain, sweep_recipe
from soda_jax.training import TrainRecipe
from soda_jax.training.branching import check_branch, learning_rates, stable_prefix_steps
from soda_jax.training.metrics import METRICS_FILE
from soda_jax.training.train import train

WARMUP_STEPS = 4.0
SHORT, LONG = 20, 30
"""Run lengths: the short run's stable segment is the first segment of the long run's chain."""


def recipe(steps: int, warmup: float = WARMUP_STEPS) -> TrainRecipe:
    base = tiny_config("unused", "unused").recipe
    return dataclasses.replace(
        base, num_train_steps=steps, optimizer=dataclasses.replace(base.optimizer, warmup=warmup)
    )


def losses(run_dir: str) -> np.ndarray:
    rows = [json.loads(line) for line in Path(run_dir, METRICS_FILE).read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(len(rows))), "one row per step, in order"
    return np.array([r["loss"] for r in rows])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, str]:
    """The long run trained straight, and as segment(short) -> segment(long) -> decay(long)."""
    root = tmp_path_factory.mktemp("branching")
    cache = str(root / "cache")
    write_test_cache(cache, str(root / "tokenizer"))
    paths = {name: str(root / name) for name in ("straight", "segment-short", "segment-long", "branched")}

    def config(name: str, steps: int, **overrides):
        return tiny_config(
            cache,
            paths[name],
            recipe=recipe(steps),
            compilation_cache_dir=str(root / "jax-cache"),
            export_hf=False,
            data=8,
            **overrides,
        )

    train(config("straight", LONG))
    train(config("segment-short", SHORT, stop_at_step=stable_prefix_steps(recipe(SHORT), TEST_TINY.hidden_dim)))
    train(
        config(
            "segment-long",
            LONG,
            stop_at_step=stable_prefix_steps(recipe(LONG), TEST_TINY.hidden_dim),
            resume_from=paths["segment-short"],
        )
    )
    train(config("branched", LONG, resume_from=paths["segment-long"]))
    return paths


def test_stable_prefix_is_where_the_decay_starts():
    # the decay takes the last 20 steps; its first step still has the peak rate (optax counts from 0)
    assert stable_prefix_steps(recipe(100, warmup=10.0), hidden_dim=64) == 81
    assert stable_prefix_steps(recipe(100, warmup=0.1), hidden_dim=64) == 81
    no_decay = dataclasses.replace(recipe(50), optimizer=dataclasses.replace(recipe(50).optimizer, decay=0.0))
    assert stable_prefix_steps(no_decay, hidden_dim=64) == 50
    rates = learning_rates(recipe(LONG), hidden_dim=64)
    assert rates[0] == 0 and rates[int(WARMUP_STEPS)] == rates.max() and rates[-1] < rates.max()


def test_a_branched_run_is_the_run_trained_straight(runs):
    short_stop, long_stop = SHORT - SHORT // 5 + 1, LONG - LONG // 5 + 1  # where each one's lr leaves the peak
    assert len(losses(runs["segment-short"])) == short_stop  # stopped where its decay starts
    assert len(losses(runs["segment-long"])) == long_stop  # the short segment's steps, then its own
    np.testing.assert_allclose(losses(runs["branched"]), losses(runs["straight"]), rtol=1e-6)
    summary = json.loads(Path(runs["branched"], "summary.json").read_text())
    assert summary["steps"] == LONG and summary["branched_at_step"] == long_stop
    assert summary["final_validation_loss"] == pytest.approx(
        json.loads(Path(runs["straight"], "summary.json").read_text())["final_validation_loss"], rel=1e-6
    )
    segment = json.loads(Path(runs["segment-short"], "summary.json").read_text())
    assert segment["stop_at_step"] == short_stop
    assert segment["final_validation_loss"] is None  # a segment stops mid-schedule: not validated at its end
    # re-running the finished branch resumes its own checkpoint: no second copy, the same result
    again = train(
        tiny_config(
            str(Path(runs["straight"]).parent / "cache"),
            runs["branched"],
            recipe=recipe(LONG),
            export_hf=False,
            data=8,
            resume_from=runs["segment-long"],
        )
    )
    assert again["branched_at_step"] is None and again["final_validation_loss"] == summary["final_validation_loss"]


def test_branching_refuses_what_would_not_be_the_same_run(runs, tmp_path):
    # a fractional warmup moves with the run's length: the schedules part before the branch point
    with pytest.raises(ValueError, match="schedules differ at step 1 < branch point 16"):
        check_branch(recipe(SHORT, warmup=0.1), TEST_TINY, recipe(LONG, warmup=0.1), TEST_TINY, 16, where="test")
    with pytest.raises(ValueError, match="recipe differs"):
        check_branch(recipe(SHORT), TEST_TINY, dataclasses.replace(recipe(LONG), seed=1), TEST_TINY, 16, where="test")
    wider = dataclasses.replace(TEST_TINY, hidden_dim=TEST_TINY.hidden_dim * 2)
    with pytest.raises(ValueError, match="the source trained"):
        check_branch(recipe(SHORT), TEST_TINY, recipe(LONG), wider, 16, where="test")
    # a real run whose source's decay has begun: refused before any step, naming both runs
    cache = str(Path(runs["straight"]).parent / "cache")
    target = str(tmp_path / "too-late")
    with pytest.raises(
        ValueError,
        match=re.escape(f"resume_from {runs['straight']} into {target}: the learning-rate schedules differ at step 25"),
    ):
        train(
            tiny_config(cache, target, recipe=recipe(LONG + 10), export_hf=False, data=8, resume_from=runs["straight"])
        )
    assert not os.path.exists(os.path.join(target, "checkpoints")), "nothing copied"
    with pytest.raises(ValueError, match="no summary.json"):
        train(
            tiny_config(
                cache, str(tmp_path / "orphan"), recipe=recipe(LONG), data=8, resume_from=str(tmp_path / "missing")
            )
        )


def test_a_sweep_width_chains_through_every_budget_below_its_run():
    from soda_jax.recipes.isoflop_mini import MINI_RULES, MINI_WARMUP_STEPS
    from soda_jax.recipes.isoflop_sweep import BranchedSweepSteps

    run = _run(MINI_RULES, max(MINI_RULES.budgets), 24)
    chain = stable_chain(MINI_RULES, run)
    assert (
        chain[-1] == run
        and [r.budget for r in chain] == sorted(MINI_RULES.budgets)
        and {r.shape for r in chain} == {run.shape}
    )
    prefixes = [stable_prefix_steps(sweep_recipe(r), r.shape.hidden_dim) for r in chain]
    assert prefixes == sorted(set(prefixes)) and all(p < r.steps for p, r in zip(prefixes, chain, strict=True))
    assert all(sweep_recipe(r).optimizer.warmup == MINI_WARMUP_STEPS for r in chain)

    data = soda_mixture({"speech": "/nowhere"}, {"speech": 1.0})
    steps = BranchedSweepSteps(MINI_RULES, data)
    first, second = steps(chain[-1]), steps(chain[-2])
    segment = steps.segment(chain[-2])
    assert first.config.resume_from.step is steps.segment(chain[-1])
    assert steps.segment(chain[-1]).config.resume_from.step is segment  # shared, not rebuilt
    assert second.config.resume_from.step is segment
    assert (
        steps.segment(chain[0]).config.resume_from is None
        and segment.name == f"checkpoints/isoflop-stable/{chain[-2].name}"
    )

    # SODA's own rules (a 10% warmup) cannot branch: refused when the step is built, not hours later
    soda = SweepRules()
    soda_run = next(r for r in runs_for_budget(soda, soda.budgets[1]) if run_for_shape(soda, soda.budgets[0], r.shape))
    with pytest.raises(ValueError, match="schedules differ at step 1 .* give it in steps"):
        BranchedSweepSteps(soda, data)(soda_run)


def _run(rules: SweepRules, budget: float, hidden: int):
    run = run_for_shape(rules, budget, rules.shape_for_hidden(hidden))
    assert run is not None
    return run


def test_a_stop_outside_the_schedule_is_refused_naming_the_run(runs, tmp_path):
    cache = str(Path(runs["straight"]).parent / "cache")
    target = str(tmp_path / "past-the-end")
    with pytest.raises(ValueError, match=re.escape(f"{target}: stop_at_step must be in 1..{LONG}, got {LONG + 1}")):
        train(tiny_config(cache, target, recipe=recipe(LONG), export_hf=False, data=8, stop_at_step=LONG + 1))
