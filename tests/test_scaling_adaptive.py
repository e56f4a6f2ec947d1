"""Adaptive isoFLOP grids: bracket checks, proposals past an edge, centred grids, executor rounds."""

import dataclasses
import glob
import math
import os

import numpy as np
import pytest
from helpers_scaling import (
    TRUE_LAW,
    SyntheticRunConfig,
    nstar,
    parabola_loss,
    true_optimal_params,
    write_synthetic_run,
)

from soda_jax.execution import ExecutorStep, this_output_path, versioned
from soda_jax.scaling import adaptive, fits, sweep
from soda_jax.scaling.adaptive import AdaptiveLimits, Observation

SODA_RULES = sweep.SweepRules()


def observe(runs, loss_of=parabola_loss):
    return [Observation(r.budget, r.shape.hidden_dim, r.params, float(loss_of(r))) for r in runs]


def fit_of(runs, loss_of=parabola_loss):
    columns = [np.array(v, float) for v in zip(*[(r.training_flops, r.params, r.tokens, loss_of(r)) for r in runs])]
    return fits.fit_compute_optimal(*columns, num_bootstrap=50)


def true_tokens_exponent(rules, nstar_of=nstar):
    """D*(C) of the synthetic law: the tokens of a model of N* params at each budget (log-interpolated over widths)."""
    compute, tokens = [], []
    for budget in rules.budgets:
        kept = [r for h in range(64, 4096, 16) if (r := sweep.run_for_shape(rules, budget, rules.shape_for_hidden(h)))]
        log_n, log_d = np.log([r.params for r in kept]), np.log([r.tokens for r in kept])
        c = float(np.mean([r.training_flops for r in kept]))
        order = np.argsort(log_n)
        compute.append(c)
        tokens.append(math.exp(np.interp(math.log(nstar_of(c)), log_n[order], log_d[order])))
    return fits.fit_power_law(compute, tokens).exponent


def test_top_budgets_at_the_upper_edge_get_wider_runs_until_bracketed():
    grid = sweep.isoflop_grid(SODA_RULES)
    first = adaptive.propose_round(SODA_RULES, observe(grid))
    statuses = [v.status for v in first]
    assert statuses[:4] == ["bracketed"] * 4 and statuses[4:] == ["edge_high"] * 3
    for verdict in first[4:]:
        widest = max(r.shape.hidden_dim for r in grid if r.budget == verdict.budget)
        assert verdict.proposed and all(r.shape.hidden_dim > widest for r in verdict.proposed)  # the right side

    result = adaptive.simulate_rounds(SODA_RULES, grid, parabola_loss)
    assert result.all_bracketed and result.rounds >= 1 and len(result.runs) > len(grid)

    adaptive_fit, grid_fit = fit_of(result.runs), fit_of(grid)
    assert adaptive_fit.params_law.exponent == pytest.approx(0.42, abs=0.02)
    true_d = true_tokens_exponent(SODA_RULES)
    assert adaptive_fit.tokens_law.exponent == pytest.approx(true_d, abs=0.02)
    # extrapolating the edge budgets' parabolas in log D is what the extra runs fix
    assert abs(adaptive_fit.tokens_law.exponent - true_d) < abs(grid_fit.tokens_law.exponent - true_d)


def test_budgets_at_the_lower_edge_get_narrower_runs():
    rules = sweep.SweepRules(min_hidden=1024)  # a grid that starts above the low budgets' optimum
    grid = sweep.isoflop_grid(rules)
    first = adaptive.propose_round(rules, observe(grid))
    assert first[0].status == "too_few"  # at 1e18 the rules keep only d=1024 of this grid
    assert first[1].status == "edge_low" and first[1].best_hidden == 1024
    assert [r.shape.hidden_dim for r in first[1].proposed] == [896, 768]  # two narrower, the grid's spacing
    result = adaptive.simulate_rounds(rules, grid, parabola_loss)
    assert result.all_bracketed


def test_proposals_follow_the_sweep_rules():
    result = adaptive.simulate_rounds(SODA_RULES, sweep.isoflop_grid(SODA_RULES), parabola_loss)
    grid_names = {r.name for r in sweep.isoflop_grid(SODA_RULES)}
    added = [r for r in result.runs if r.name not in grid_names]
    assert added
    for run in added:
        assert abs(run.forward_flops - run.budget) / run.budget <= SODA_RULES.flop_tolerance
        assert run.batch_size >= SODA_RULES.min_batch_size and run.steps < SODA_RULES.max_steps
        assert run.shape == SODA_RULES.shape_for_hidden(run.shape.hidden_dim)  # depth/head/MLP rule
        assert run.learning_rate <= SODA_RULES.max_learning_rate
        assert run.learning_rate == pytest.approx(SODA_RULES.learning_rate(run.batch_size, run.shape.hidden_dim))


def test_search_past_an_edge_stops_at_the_limits_with_reasons():
    small_optimum = lambda c: 1e7 * (c / 3e18) ** 0.42  # noqa: E731  far below any model the rules allow
    grid = sweep.isoflop_grid(SODA_RULES)
    verdicts = adaptive.propose_round(SODA_RULES, observe(grid, lambda r: parabola_loss(r, small_optimum)))
    assert all(v.status == "edge_low" and not v.proposed for v in verdicts)
    lowest = verdicts[0]
    assert any("steps >= 400000" in note for note in lowest.notes)  # narrower models take too many steps
    assert any("width floor" in note for note in lowest.notes)

    tight = AdaptiveLimits(max_hidden=2048)
    top = adaptive.propose_round(SODA_RULES, observe(grid), tight)[-1]
    assert top.status == "edge_high" and not top.proposed
    assert any("width ceiling" in note for note in top.notes)


def test_an_edge_without_run_widths_is_refused_not_guessed():
    top_budget = max(SODA_RULES.budgets)
    runs = [r for r in sweep.isoflop_grid(SODA_RULES) if r.budget == top_budget]
    observations = [dataclasses.replace(o, hidden=None) for o in observe(runs)]
    assert adaptive.judge_budget(observations).status == "edge_high"  # judged on N alone
    with pytest.raises(ValueError, match="needs every run's width"):
        adaptive.propose_for_budget(SODA_RULES, observations)


def test_too_few_and_noisy_budgets():
    runs = sweep.runs_for_budget(SODA_RULES, 1e18)
    two = adaptive.propose_for_budget(SODA_RULES, observe(runs[3:5]))
    assert two.status == "too_few" and two.proposed  # widths on both sides to start a curve
    rng = np.random.default_rng(0)
    noisy = adaptive.propose_for_budget(SODA_RULES, observe(runs, lambda r: 3.0 + rng.normal(0, 0.05)))
    assert noisy.status == "poor_fit" and noisy.fit_r2 < 0.8
    assert not noisy.proposed  # wider or narrower models would not make noise a valley


def test_a_grid_centred_on_a_prior_law_brackets_with_fewer_runs():
    """With a prior off by 1.5x in N*, a centred 5-wide grid plus adaptive rounds brackets every
    budget with fewer runs than SODA's 59-run grid (which also needs a round at its top budgets)."""
    prior = fits.PowerLaw(coefficient=1.5 * nstar(1.0), exponent=0.42)
    centred = adaptive.centered_grid(SODA_RULES, prior, runs_each_side=2)
    assert len(centred) == 5 * len(SODA_RULES.budgets)
    centred_result = adaptive.simulate_rounds(SODA_RULES, centred, parabola_loss)
    soda_result = adaptive.simulate_rounds(SODA_RULES, sweep.isoflop_grid(SODA_RULES), parabola_loss)
    assert centred_result.all_bracketed and soda_result.all_bracketed
    assert len(centred_result.runs) < len(soda_result.runs)


def test_paper_law_brackets_on_soda_grid():
    """The Chinchilla-style law of the other scaling tests: the rounds settle and find the true optimum's size."""
    result = adaptive.simulate_rounds(
        SODA_RULES, sweep.isoflop_grid(SODA_RULES), lambda r: TRUE_LAW(r.params, r.tokens)
    )
    assert result.all_bracketed
    for verdict in result.verdicts:
        assert abs(math.log(verdict.vertex_params / true_optimal_params(verdict.budget))) < math.log(1.5)


# ----------------------------------------------------------------------------- executor rounds


def synthetic_train_step(run, log_path):
    return ExecutorStep(
        name=f"checkpoints/isoflop/{run.name}",
        fn=write_synthetic_run,
        config=SyntheticRunConfig(
            output_path=this_output_path(),
            budget=versioned(run.budget),
            hidden=versioned(run.shape.hidden_dim),
            log_path=log_path,
        ),
    )


def test_rerunning_the_experiment_adds_exactly_the_proposed_runs(tmp_path):
    from soda_jax.recipes.adaptive_sweep import AdaptiveSweep, build_state, run_adaptive_sweep

    rules = sweep.SweepRules(budgets=(6e19,), min_hidden=1536)  # 3 widths, the best at the upper edge
    log = tmp_path / "ran.txt"
    experiment = AdaptiveSweep(
        name="analysis/isoflop-test",
        rules=rules,
        first_grid=tuple(sweep.isoflop_grid(rules)),
        train_step_for=lambda run: synthetic_train_step(run, str(log)),
        with_analysis=False,
    )
    prefix = str(tmp_path / "prefix")
    args = ["--prefix", prefix, "--local"]

    before = build_state(experiment, prefix)
    assert before.rounds_applied == 0 and not before.settled
    run_adaptive_sweep(experiment, args, "round 0")  # one executor run: train the grid, then propose
    first_round = log.read_text().split()
    assert sorted(first_round) == sorted(r.name for r in experiment.first_grid)

    after = build_state(experiment, prefix)
    proposed = [p for v in after.last_proposals["verdicts"] for p in v["proposed"]]
    assert after.rounds_applied == 1 and proposed
    assert {r.name for r in after.runs} - {r.name for r in before.runs} == {p["name"] for p in proposed}

    run_adaptive_sweep(experiment, [*args, "--rounds", "5"], "more rounds")
    ran = log.read_text().split()
    assert ran[: len(first_round)] == first_round
    assert sorted(ran[len(first_round) : len(first_round) + len(proposed)]) == sorted(p["name"] for p in proposed)
    assert len(ran) == len(set(ran))  # nothing that succeeded ran again
    final = build_state(experiment, prefix)
    assert final.settled and all(v["status"] == "bracketed" for v in final.last_proposals["verdicts"])

    # a settled sweep whose analysis is new (or changed) still gets it, and trains nothing again
    with_analysis = dataclasses.replace(experiment, with_analysis=True, num_bootstrap=10)
    run_adaptive_sweep(with_analysis, args, "analysis added")
    assert log.read_text().split() == ran
    assert glob.glob(os.path.join(prefix, "analysis", "isoflop-test-*", "scaling_fits.json"))
