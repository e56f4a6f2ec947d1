"""Reference runs (SODA's final models, the mini sweep's reference) starred on the capability plots,
beside SODA's eight reported numbers, each marked with the model it probably belongs to."""

from __future__ import annotations

import json
import os

import matplotlib
import numpy as np
import pytest
from helpers_scaling import TEXT_LOSS, TRUE_LAW, accuracy_for_loss, sweep_with_text_component, write_run

from soda_jax.eval.report import SODA_REPORTED
from soda_jax.scaling import plots, runs, sweep
from soda_jax.scaling.analysis import ScalingAnalysisConfig, analyze_scaling, describe_fits
from soda_jax.scaling.capability import SODA_REPORTED as CAPABILITY_REPORTED
from soda_jax.scaling.capability import fit_capability

METRIC = "swuggy/accuracy"
"""A metric SODA reports, so its plot also draws SODA's line."""


def test_all_eight_reported_numbers_with_their_probable_model():
    expected = {
        "swuggy/accuracy": 0.618,
        "sblimp/accuracy": 0.524,
        "salmon/accuracy": 0.706,
        "twuggy/accuracy": 0.748,
        "tblimp/accuracy": 0.713,
        "librispeech/wer": 0.050,
        "seed_tts/wer_x100": 6.1,
        "lm_eval/hellaswag/acc_norm": 0.526,
    }
    assert {name: score.value for name, score in SODA_REPORTED.items()} == expected
    assert CAPABILITY_REPORTED is SODA_REPORTED
    assert {(s.model, s.model_certain) for s in SODA_REPORTED.values()} == {
        ("SODA-4B", False)
    }  # "probably 4B": marked so
    assert (
        SODA_REPORTED["librispeech/wer"].as_reported == "5.0"
        and "0-shot or N-shot" in SODA_REPORTED["librispeech/wer"].note
    )
    assert "acc_norm assumed" in SODA_REPORTED["lm_eval/hellaswag/acc_norm"].note


def _stars(axes) -> list[tuple[float, float]]:
    """Centres of the star markers drawn on ``axes``."""
    marker = matplotlib.markers.MarkerStyle("*")
    star = marker.get_path().transformed(marker.get_transform()).vertices
    out = []
    for collection in axes.collections:
        path = collection.get_paths()[0] if collection.get_paths() else None
        if path is not None and len(path.vertices) == len(star) and np.allclose(path.vertices, star):
            out += [tuple(p) for p in collection.get_offsets()]
    return out


def test_reference_runs_are_stars_and_sodas_number_a_labelled_line():
    loss = np.linspace(4.2, 5.2, 8)
    fit = fit_capability(METRIC, loss, accuracy_for_loss(loss))
    references = {"soda-600m": (3.9, 0.79), "soda-4b": (3.7, 0.8)}
    figure = plots.capability_vs_loss(
        fit, loss, accuracy_for_loss(loss), references, reported=SODA_REPORTED[METRIC], loss_label="held-out speech NLL"
    )
    (axes,) = figure.axes
    assert sorted(_stars(axes)) == sorted(references.values())
    assert {t.get_text() for t in axes.texts} == set(references)  # each star named
    lines = [line for line in axes.get_lines() if line.get_label().startswith("SODA-4B? reported 61.8")]
    assert len(lines) == 1 and set(lines[0].get_ydata()) == {0.618}
    assert axes.get_xlabel() == "held-out speech NLL"
    assert min(axes.get_xlim()) <= 3.7  # the curve's axis reaches the reference runs
    matplotlib.pyplot.close(figure)


def test_analysis_fits_speech_nll_and_stars_its_reference_runs_on_every_capability_plot(tmp_path):
    """One analysis (its L(N, D) profiles take a minute of CPU): the fitted loss it records and uses,
    and its reference run on each capability plot."""
    run_paths, eval_paths = sweep_with_text_component(
        str(tmp_path / "sweep"), metrics=lambda loss: {METRIC: float(accuracy_for_loss(loss)), "other/score": loss / 10}
    )
    reference_dir, reference_eval = write_run(
        str(tmp_path / "finals"),
        "soda-4b",
        params=4.4e9,
        tokens=5e11,
        train_flops=1.3e22,
        loss=3.2,
        metrics={METRIC: 0.8},
    )
    fits = analyze_scaling(
        ScalingAnalysisConfig(
            run_paths,
            str(tmp_path / "out"),
            eval_paths=eval_paths,
            num_bootstrap=20,
            num_parametric_bootstrap=2,
            reference_run_paths=(reference_dir,),
            reference_eval_paths=(reference_eval,),
            capability_metrics=(METRIC, "other/score", "salmon/accuracy"),
        )
    )
    assert fits["fitted_loss"] == {
        "name": "heldout_speech_nll",
        "description": runs.describe_loss("heldout_speech_nll"),
    }
    for record in fits["runs"]:  # the speech loss is fitted; the old macro mean is recorded beside it
        speech = float(TRUE_LAW(record["params"], record["tokens"]))
        assert record["loss"] == pytest.approx(speech)
        assert record["losses"]["validation_macro"] == pytest.approx((speech + TEXT_LOSS) / 2)
        assert record["losses"]["heldout_speech_nll/semantic"] == pytest.approx(speech)
    with open(tmp_path / "out" / "scaling_fits.json") as f:
        assert json.load(f)["fitted_loss"]["name"] == "heldout_speech_nll"
    (reference,) = fits["references"]
    assert (reference["name"], reference["loss"], reference["metrics"]) == ("soda-4b", 3.2, {METRIC: 0.8})
    assert fits["capabilities"]["salmon/accuracy"] == {
        "error": "no run's evaluation results hold this metric (task not run, or its set missing)"
    }
    assert {"swuggy_accuracy", "other_score"} == {
        name.removeprefix("capability_").removesuffix(".png")
        for name in os.listdir(tmp_path / "out")
        if name.startswith("capability_")
    }
    with open(tmp_path / "out" / "capability_swuggy_accuracy.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    text = describe_fits(fits, str(tmp_path / "out"))
    assert "fitted loss: heldout_speech_nll" in text and "N* ~ C^" in text and "95% interval" in text
    assert "1 reference runs starred" in text and str(tmp_path / "out") in text


def test_describe_fits_states_the_bracket_verdicts():
    fits = {
        "runs": [{}] * 3,
        "skipped": {},
        "fitted_loss": {"name": "heldout_speech_nll", "description": "held-out speech NLL"},
        "compute_optimal": {"error": "ValueError: too few budgets"},
        "parametric": {"error": "not identified: alpha open"},
    }
    proposals = {
        "verdicts": [
            {"budget": 1e12, "status": "bracketed", "best_hidden": 24, "runs_below": 2, "runs_above": 2, "fit_r2": 0.97}
        ]
    }
    text = describe_fits(fits, None, proposals)
    assert "N*, D*: not fitted: ValueError: too few budgets" in text and "L(N, D): not identified" in text
    assert "budget 1.00e+12: bracketed (best d=24, 2 below / 2 above, parabola R^2 0.97)" in text


def test_mini_sweep_fits_speech_nll_and_stars_a_reference_run():
    from soda_jax.eval.step import run_eval
    from soda_jax.recipes.isoflop_mini import MINI_ANALYSIS, MINI_REFERENCE, MINI_RULES, mini_adaptive_sweep

    sweep_ = mini_adaptive_sweep()
    ((reference, reference_eval),) = sweep_.references
    assert reference.name == f"checkpoints/isoflop/{MINI_REFERENCE.name}" and MINI_REFERENCE.budget > max(
        MINI_RULES.budgets
    )
    assert reference_eval.fn is run_eval and reference_eval.config.model_path is reference
    assert reference.config.resume_from.step.name.startswith(
        "checkpoints/isoflop-stable/"
    )  # branched off its width's trunk
    from soda_jax.recipes.adaptive_sweep import build_state

    state = build_state(sweep_, "/nonexistent-prefix")
    analysis = state.steps[-1]
    assert analysis.name == MINI_ANALYSIS and analysis.config.fitted_loss.value == "heldout_speech_nll"
    assert [p.step for p in analysis.config.reference_run_paths] == [reference]
    assert [p.step for p in analysis.config.reference_eval_paths] == [reference_eval]
    assert reference in state.steps and reference_eval in state.steps


def test_isoflop_plot_names_the_fitted_loss():
    grid = [r for r in sweep.isoflop_grid() if r.budget in (1e18, 3e18)]
    compute, params = [r.training_flops for r in grid], [r.params for r in grid]
    loss = [float(TRUE_LAW(r.params, r.tokens)) for r in grid]
    figure = plots.isoflop_curves(
        compute, params, loss, None, loss_label="held-out speech NLL, token-weighted (nats/token)"
    )
    assert figure.axes[0].get_ylabel() == "held-out speech NLL, token-weighted (nats/token)"
    matplotlib.pyplot.close(figure)
