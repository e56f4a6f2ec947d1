"""The analysis step on a synthetic sweep written to disk, and the planner on its output."""

import json
import math
import os

import pytest
from helpers_scaling import TRUE_LAW, accuracy_for_loss, true_optimal_params, write_run, write_synthetic_sweep

from soda_jax.scaling import adaptive, analysis, planner, sweep
from soda_jax.scaling.adaptive import AdaptiveLimits, Observation


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("sweep"))
    run_paths, eval_paths = write_synthetic_sweep(root)
    # a run that never finished, one that diverged: skipped and counted, not fatal
    os.makedirs(os.path.join(root, "checkpoints", "unfinished"))
    diverged, _ = write_run(root, "diverged", params=1e8, tokens=1e9, train_flops=3e18, loss=math.nan)
    # a big reference model, marked on the capability plot only
    reference_loss = float(TRUE_LAW(4e9, 5e11))
    reference, reference_eval = write_run(
        root,
        "soda-4b",
        params=4e9,
        tokens=5e11,
        train_flops=1.2e22,
        loss=reference_loss,
        metrics={"sblimp_accuracy": float(accuracy_for_loss(reference_loss))},
    )
    config = analysis.ScalingAnalysisConfig(
        run_paths=(*run_paths, os.path.join(root, "checkpoints", "unfinished"), diverged),
        eval_paths=(*eval_paths, "", ""),
        reference_run_paths=(reference,),
        reference_eval_paths=(reference_eval,),
        output_path=os.path.join(root, "analysis"),
        num_bootstrap=100,
        num_parametric_bootstrap=20,
    )
    analysis.analyze_scaling(config)
    return config


def test_fits_json_is_written_with_skips_counted(analysed):
    with open(os.path.join(analysed.output_path, analysis.FITS_FILE)) as f:
        result = json.load(f)
    assert len(result["runs"]) == len(sweep.isoflop_grid())
    assert result["skipped"] == {"missing summary or eval results": 1, "malformed summary or eval results": 1}
    assert any("diverged" in path for path in result["skipped_paths"])
    assert result["references"][0]["name"] == "soda-4b"


def test_fits_recover_the_generating_law(analysed):
    with open(os.path.join(analysed.output_path, analysis.FITS_FILE)) as f:
        result = json.load(f)
    law = result["parametric"]["law"]
    assert law["alpha"] == pytest.approx(TRUE_LAW.alpha, abs=0.02)
    assert law["beta"] == pytest.approx(TRUE_LAW.beta, abs=0.02)
    assert len(result["parametric"]["bootstrap"]) == 20
    optimal = result["compute_optimal"]
    assert len(optimal["budgets"]) == len(sweep.SODA_FORWARD_BUDGETS)
    # approach 2 finds the law's optimum at every budget (within the grid's resolution)
    for budget, optimum in zip(sweep.SODA_FORWARD_BUDGETS, optimal["budgets"]):
        assert optimum["compute"] == pytest.approx(3 * budget, rel=0.01)
        assert abs(math.log(optimum["params_opt"] / true_optimal_params(budget))) < math.log(1.5), budget
        assert "vertex_samples" not in optimum  # the bootstrap's samples stay in memory, not in the JSON
    capability = result["capabilities"]["sblimp_accuracy"]
    assert capability["model"] == "sigmoid"
    assert capability["num_points"] == len(sweep.isoflop_grid())


def test_plots_are_real_pngs(analysed):
    for name in ("isoflop_curves", "compute_optimal", "parametric_residuals", "capability_sblimp_accuracy"):
        with open(os.path.join(analysed.output_path, f"{name}.png"), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name


def test_planner_follows_the_fitted_laws(analysed):
    with open(os.path.join(analysed.output_path, analysis.FITS_FILE)) as f:
        fits = json.load(f)
    result = planner.plan(fits, 1e21)
    assert abs(math.log(result.params / result.params_opt)) < math.log(1.3)  # nearest catalogue width
    assert result.tokens * 3 * result.shape.forward_flops_per_token(sweep.SODA_VOCAB_SIZE, 4096) == pytest.approx(
        1e21, rel=1e-6
    )
    assert result.loss_interval.low <= result.predicted_loss <= result.loss_interval.high
    assert result.predicted_loss == pytest.approx(float(TRUE_LAW(result.params, result.tokens)), rel=0.01)
    accuracy = result.capabilities["sblimp_accuracy"]
    assert accuracy["low"] <= accuracy["value"] <= accuracy["high"]
    bigger = planner.plan(fits, 1e22)
    assert bigger.params > result.params and bigger.tokens > result.tokens
    assert bigger.predicted_loss < result.predicted_loss


def test_plan_main_prints_the_plan(analysed, capsys):
    assert planner.plan_main(["--budget", "1e21", "--fits", analysed.output_path]) == 0
    out = capsys.readouterr().out
    assert "catalogue model: d=" in out and "predicted final validation loss" in out
    assert planner.plan_main(["--budget", "1e21", "--fits", analysed.output_path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["budget"] == 1e21


def test_plan_main_reports_missing_fits(tmp_path, capsys):
    assert planner.plan_main(["--budget", "1e21", "--fits", str(tmp_path)]) == 2
    assert "scaling_fits.json" in capsys.readouterr().out


def test_partial_sweep_records_fit_errors_instead_of_failing(tmp_path):
    run_paths = []
    for i, params in enumerate([1e8, 2e8]):  # one budget, two sizes: no parabola, no L(N, D)
        run_dir, _ = write_run(str(tmp_path), f"r{i}", params=params, tokens=1e9, train_flops=3e18, loss=3.0 - i * 0.1)
        run_paths.append(run_dir)
    config = analysis.ScalingAnalysisConfig(
        run_paths=tuple(run_paths), output_path=str(tmp_path / "out"), num_bootstrap=10
    )
    result = analysis.analyze_scaling(config)
    assert "error" in result["compute_optimal"] and "error" in result["parametric"]
    assert os.path.exists(tmp_path / "out" / "isoflop_curves.png")
    with pytest.raises(ValueError, match="neither"):
        planner.plan(result, 1e21)


def test_no_readable_runs_is_an_error(tmp_path):
    config = analysis.ScalingAnalysisConfig(run_paths=(str(tmp_path / "nope"),), output_path=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="no readable training runs"):
        analysis.analyze_scaling(config)


def test_bracket_limits_leave_unbracketed_budgets_out_of_the_exponent_fits(tmp_path):
    """SODA's grid leaves its top budgets' optima at the upper edge (the reason for adaptive rounds):
    with ``bracket_limits`` those budgets are listed with their verdict, and N*, D* go through the rest."""
    runs = sweep.isoflop_grid()
    losses = [float(TRUE_LAW(run.params, run.tokens)) for run in runs]
    observations = [Observation(r.budget, r.shape.hidden_dim, r.params, loss) for r, loss in zip(runs, losses)]
    status = {v.budget: v.status for v in adaptive.propose_round(sweep.SweepRules(), observations, AdaptiveLimits())}
    unbracketed = sorted(b for b, s in status.items() if s != "bracketed")
    assert unbracketed and len(unbracketed) < len(status) - 1  # some at an edge, enough left to fit
    run_paths = [
        write_run(str(tmp_path), r.name, params=r.params, tokens=r.tokens, train_flops=r.training_flops, loss=loss)[0]
        for r, loss in zip(runs, losses)
    ]
    config = analysis.ScalingAnalysisConfig(
        run_paths=tuple(run_paths),
        output_path=str(tmp_path / "out"),
        num_bootstrap=20,
        num_parametric_bootstrap=2,
        bracket_limits=AdaptiveLimits(),
    )
    optimal = analysis.analyze_scaling(config)["compute_optimal"]
    skipped = sorted(optimal["skipped_budgets"])
    assert [c / 3 for c, _ in skipped] == pytest.approx(unbracketed, rel=0.05)
    for (_, why), budget in zip(skipped, unbracketed):
        assert why.startswith(f"not bracketed: {status[budget]}")
    fitted = sorted(b["compute"] / 3 for b in optimal["budgets"])
    assert fitted == pytest.approx(sorted(b for b, s in status.items() if s == "bracketed"), rel=0.05)
