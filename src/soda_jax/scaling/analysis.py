"""The scaling-analysis step: training runs (+ eval results) in, fits JSON and plots out.

Output directory:

```
{out}/scaling_fits.json          runs used, skipped counts, approach-2 and approach-3 fits,
                                 capability fits, reference (big) models
{out}/isoflop_curves.png         loss vs N per budget, parabolas and minima
{out}/compute_optimal.png        N* and D* vs C with fitted power laws
{out}/parametric_profiles.png    profile likelihoods of L(N, D)'s alpha and beta
{out}/parametric_residuals.png   L(N, D) vs observed loss, residuals vs C (only when identified)
{out}/capability_{metric}.png    metric vs the fitted loss, reference models starred, SODA's
                                 reported value drawn where the metric is one SODA reports
```

**Which loss.** ``fitted_loss`` names the loss every fit and plot uses (`soda_jax.scaling.runs`):
by default ``heldout_speech_nll``, SODA's: the token-weighted NLL on the held-out validation split
of the speech components (text-only components such as Nemotron-CC left out); also its text,
semantic and acoustic parts, the token-weighted NLL over every component (``heldout_nll``), and
the old unweighted mean over components (``validation_macro``, text included). The JSON records it
(``fitted_loss``), and each run's other losses beside the fitted one (``runs[i].losses``).

With ``bracket_limits`` set (adaptive sweeps: the limits their proposals judge by), N* and D* are
fitted through the budgets `judge_budget` calls bracketed only; the others (a minimum at an edge or at
a stated limit, runs that trace no valley) are listed in ``skipped_budgets`` with their verdict, still
drawn on the isoFLOP plot, and still used by L(N, D), which needs no minimum per budget.

L(N, D) is fitted only when the profile likelihoods of both exponents close inside the scanned
range (`soda_jax.scaling.fits.profile_exponents`); otherwise ``parametric`` holds the reason.

A fit that cannot be made (too few budgets, a budget with no interior minimum...) is recorded as
``{"error": ...}`` in the JSON and its plot is left out; the step still succeeds if the runs
could be read, so a partial sweep can be looked at.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from typing import Any

import numpy as np

from soda_jax import fileio
from soda_jax.contracts import FITS_FILE
from soda_jax.models.flops import TRAINING_FLOPS_MULTIPLIER
from soda_jax.scaling import plots
from soda_jax.scaling.adaptive import AdaptiveLimits, Observation, judge_budget
from soda_jax.scaling.capability import SODA_REPORTED, fit_capability
from soda_jax.scaling.fits import (
    bootstrap_parametric,
    fit_compute_optimal,
    fit_parametric,
    group_by_budget,
    profile_exponents,
)
from soda_jax.scaling.runs import DEFAULT_FITTED_LOSS, RunRecord, describe_loss, read_runs

logger = logging.getLogger(__name__)

FLOP_CONVENTION = (
    "C = training FLOPs = 3 x forward FLOPs; forward FLOPs per token as levanter's "
    "lm_flops_per_token(glu=True) at the real attention width; N = all parameters incl. embeddings"
)


@dataclasses.dataclass(frozen=True)
class ScalingAnalysisConfig:
    """Inputs and settings of `analyze_scaling`."""

    run_paths: tuple[str, ...]
    """Training output directories of the sweep (each with summary.json)."""
    output_path: str
    """Where fits and plots go."""
    eval_paths: tuple[str, ...] = ()
    """Eval results per run, in the order of ``run_paths`` ("" where a run has none): a JSON file
    or a directory with results.json, holding ``{"metrics": {name: value}}``. Empty: no capability fits."""
    reference_run_paths: tuple[str, ...] = ()
    """Training outputs of full-size models to mark on capability plots (not used in any fit)."""
    reference_eval_paths: tuple[str, ...] = ()
    """Eval results of the reference models, in the order of ``reference_run_paths``."""
    num_bootstrap: int = 1000
    """Bootstrap resamples for the isoFLOP minima and the exponent intervals."""
    num_parametric_bootstrap: int = 100
    """Bootstrap refits of L(N, D) stored for prediction intervals (planner)."""
    seed: int = 0
    """Seed of the bootstraps."""
    capability_metrics: tuple[str, ...] = ()
    """Eval metrics fitted against loss (empty: every numeric metric the eval results hold)."""
    bracket_limits: AdaptiveLimits | None = None
    """Fit N* and D* through the budgets bracketed under these limits only (None: every budget with
    enough sizes for a parabola, whatever its shape)."""
    fitted_loss: str = DEFAULT_FITTED_LOSS
    """The loss every fit uses (`soda_jax.scaling.runs.fitted_loss_names`): SODA's held-out speech NLL
    by default, ``validation_macro`` for the mean over components that sweeps fitted before."""


def analyze_scaling(config: ScalingAnalysisConfig) -> dict[str, Any]:
    """Fit everything the runs allow; write scaling_fits.json and the plots. Returns the JSON."""
    loss_label = describe_loss(config.fitted_loss)  # an unknown name fails here, before any run is read
    loaded = read_runs(tuple(config.run_paths), tuple(config.eval_paths), config.fitted_loss)
    references = read_runs(tuple(config.reference_run_paths), tuple(config.reference_eval_paths), config.fitted_loss)
    runs = loaded.records
    logger.info("scaling analysis: %d runs read, skipped %s", len(runs), loaded.skipped or "none")
    if not runs:
        raise ValueError(f"no readable training runs among {len(config.run_paths)}: {loaded.skipped_paths}")
    columns = _columns(runs)
    result: dict[str, Any] = {
        "fitted_loss": {"name": config.fitted_loss, "description": loss_label},
        "flop_convention": FLOP_CONVENTION,
        "runs": [dataclasses.asdict(r) for r in runs],
        "skipped": loaded.skipped,
        "skipped_paths": loaded.skipped_paths,
        "references": [dataclasses.asdict(r) for r in references.records],
        "references_skipped": references.skipped,
        "references_skipped_paths": references.skipped_paths,
    }
    compute_optimal = _fit_compute_optimal(runs, columns, config)
    result["compute_optimal"] = _jsonable(compute_optimal)
    identification = _attempt(
        "parametric identification", lambda: profile_exponents(columns["params"], columns["tokens"], columns["loss"])
    )
    result["parametric_identification"] = _jsonable(identification)
    if _failed(identification):
        parametric = {"error": f"identifiability not checked: {identification['error']}"}
    elif not identification.identified:
        logger.warning("L(N, D) not fitted: %s", identification.reason)
        parametric = {"error": f"not identified: {identification.reason}"}
    else:
        parametric = _attempt("parametric", lambda: _fit_parametric_with_bootstrap(columns, config))
    result["parametric"] = _jsonable(parametric)
    capabilities = _fit_capabilities(runs, config.capability_metrics)
    result["capabilities"] = {metric: _jsonable(fit) for metric, fit in capabilities.items()}

    fileio.makedirs(config.output_path)
    fileio.atomic_write_json(fileio.join(config.output_path, FITS_FILE), result)
    _write_plots(
        config.output_path, columns, compute_optimal, parametric, capabilities, runs, references.records, loss_label
    )
    if not _failed(identification):
        plots.save_png(
            plots.exponent_profiles(identification), fileio.join(config.output_path, "parametric_profiles.png")
        )
    return result


def _columns(runs: list[RunRecord]) -> dict[str, np.ndarray]:
    return {
        "compute": np.array([r.train_flops for r in runs], float),
        "params": np.array([r.params for r in runs], float),
        "tokens": np.array([r.tokens for r in runs], float),
        "loss": np.array([r.loss for r in runs], float),
    }


def _fit_compute_optimal(runs: list[RunRecord], columns: dict[str, np.ndarray], config: ScalingAnalysisConfig):
    """Approach 2 over every budget, or over the bracketed ones (``config.bracket_limits``)."""
    unbracketed: tuple[tuple[float, str], ...] = ()
    if config.bracket_limits is not None:
        columns, unbracketed = _bracketed_only(runs, columns, config.bracket_limits)
    fit = _attempt(
        "compute_optimal",
        lambda: fit_compute_optimal(
            columns["compute"],
            columns["params"],
            columns["tokens"],
            columns["loss"],
            num_bootstrap=config.num_bootstrap,
            seed=config.seed,
        ),
    )
    if not unbracketed:
        return fit
    if _failed(fit):
        return {"error": f"{fit['error']}; not bracketed: " + "; ".join(f"{c:.2e}: {why}" for c, why in unbracketed)}
    return dataclasses.replace(fit, skipped_budgets=(*unbracketed, *fit.skipped_budgets))


def _bracketed_only(
    runs: list[RunRecord], columns: dict[str, np.ndarray], limits: AdaptiveLimits
) -> tuple[dict[str, np.ndarray], tuple[tuple[float, str], ...]]:
    """The columns of the runs whose budget `judge_budget` calls bracketed, and (C, why) of the others."""
    labels = group_by_budget(columns["compute"])  # the grouping fit_compute_optimal uses
    keep = np.ones(len(runs), bool)
    skipped = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        budget = float(columns["compute"][members].mean())
        forward_budget = budget / TRAINING_FLOPS_MULTIPLIER
        verdict = judge_budget(
            [Observation(forward_budget, runs[i].hidden, runs[i].params, runs[i].loss) for i in members], limits
        )
        if verdict.status != "bracketed":
            keep[members] = False
            r2 = "none" if verdict.fit_r2 is None else f"{verdict.fit_r2:.2f}"
            skipped.append(
                (
                    budget,
                    f"not bracketed: {verdict.status} ({verdict.runs_below} runs below the best, "
                    f"{verdict.runs_above} above, parabola R^2 {r2})",
                )
            )
            logger.warning("budget %.2e left out of the N*/D* fits: %s", budget, skipped[-1][1])
    return {name: values[keep] for name, values in columns.items()}, tuple(skipped)


def _fit_parametric_with_bootstrap(columns, config: ScalingAnalysisConfig) -> dict[str, Any]:
    law = fit_parametric(columns["params"], columns["tokens"], columns["loss"])
    bootstrap = bootstrap_parametric(
        columns["params"],
        columns["tokens"],
        columns["loss"],
        law,
        num_bootstrap=config.num_parametric_bootstrap,
        seed=config.seed,
    )
    residual = np.log(law(columns["params"], columns["tokens"])) - np.log(columns["loss"])
    n_exponent, d_exponent = law.compute_optimal_exponents()
    return {
        "law": law,
        "log_rmse": float(np.sqrt(np.mean(residual**2))),
        "implied_params_exponent": n_exponent,
        "implied_tokens_exponent": d_exponent,
        "bootstrap": bootstrap,
    }


def _fit_capabilities(runs: list[RunRecord], wanted: tuple[str, ...] = ()) -> dict[str, Any]:
    """A fit per metric; a wanted metric that no run's results hold is recorded as an error (its
    evaluation set missing, say), not left out."""
    metrics = sorted({name for r in runs for name in r.metrics if not wanted or name in wanted})
    fits: dict[str, Any] = {}
    for metric in metrics:
        loss = [r.loss for r in runs]
        values = [r.metrics.get(metric, math.nan) for r in runs]
        fits[metric] = _attempt(f"capability {metric}", lambda: fit_capability(metric, loss, values))  # noqa: B023 (called at once)
    for metric in wanted:
        if metric not in fits:
            logger.warning("capability %s: no run's evaluation results hold it", metric)
            fits[metric] = {"error": "no run's evaluation results hold this metric (task not run, or its set missing)"}
    return fits


def _attempt(what: str, fit):
    """Run a fit; on failure log it and return an error record instead of raising."""
    try:
        return fit()
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as error:
        logger.warning("%s fit failed: %s", what, error)
        return {"error": f"{type(error).__name__}: {error}"}


def _failed(fit) -> bool:
    return isinstance(fit, dict) and "error" in fit


def _write_plots(
    output_path, columns, compute_optimal, parametric, capabilities, runs, references, loss_label: str
) -> None:
    compute, params, tokens, loss = columns["compute"], columns["params"], columns["tokens"], columns["loss"]
    plots.save_png(
        plots.isoflop_curves(
            compute, params, loss, None if _failed(compute_optimal) else compute_optimal, loss_label=loss_label
        ),
        fileio.join(output_path, "isoflop_curves.png"),
    )
    if not _failed(compute_optimal):
        plots.save_png(plots.compute_optimal(compute_optimal), fileio.join(output_path, "compute_optimal.png"))
    if not _failed(parametric):
        plots.save_png(
            plots.parametric_residuals(parametric["law"], params, tokens, loss, compute),
            fileio.join(output_path, "parametric_residuals.png"),
        )
    for metric, fit in capabilities.items():
        if _failed(fit):
            continue
        marked = {_display_name(r.name): (r.loss, r.metrics[metric]) for r in references if metric in r.metrics}
        figure = plots.capability_vs_loss(
            fit,
            [r.loss for r in runs],
            [r.metrics.get(metric, math.nan) for r in runs],
            marked,
            reported=SODA_REPORTED.get(metric),
            loss_label=loss_label,
        )
        plots.save_png(figure, fileio.join(output_path, f"capability_{_file_safe(metric)}.png"))


def _display_name(run_name: str) -> str:
    """A run directory's name without the executor's version hash (``soda-4b-1a2b3c4d`` -> ``soda-4b``)."""
    return re.sub(r"-[0-9a-f]{8}$", "", run_name)


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _jsonable(value: Any) -> Any:
    """Dataclasses to dicts (less fields marked ``metadata={"json": False}``), numpy to Python,
    non-finite floats to None (strict JSON)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [f for f in dataclasses.fields(value) if f.metadata.get("json", True)]
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def describe_fits(fits: dict[str, Any], output_path: str | None = None, proposals: dict[str, Any] | None = None) -> str:
    """A scaling_fits.json (and the sweep's proposals.json) in words: the fitted loss, the exponents
    with their 95% intervals, L(N, D), each budget's bracket verdict and where the plots are."""
    fitted = fits.get("fitted_loss") or {
        "name": "validation_macro",
        "description": "final_validation_loss (older analysis)",
    }
    lines = [
        f"scaling fits over {len(fits.get('runs') or [])} runs (skipped: {fits.get('skipped') or 'none'}); "
        f"fitted loss: {fitted['name']} = {fitted['description']}"
    ]
    optimal = fits.get("compute_optimal") or {}
    if "error" in optimal:
        lines.append(f"  N*, D*: not fitted: {optimal['error']}")
    elif optimal:
        for symbol, law in (("N*", optimal["params_law"]), ("D*", optimal["tokens_law"])):
            interval = law.get("exponent_interval")
            span = f" (95% interval {interval['low']:.2f}..{interval['high']:.2f})" if interval else ""
            lines.append(f"  {symbol} ~ C^{law['exponent']:.3f}{span}")
        if optimal.get("tokens_faster_share") is not None:
            lines.append(f"  D* grows faster than N* in {optimal['tokens_faster_share']:.0%} of the joint resamples")
        for budget, why in optimal.get("skipped_budgets") or []:
            lines.append(f"  C={budget:.2e} left out of N*, D*: {why}")
    parametric = fits.get("parametric") or {}
    if "error" in parametric:
        lines.append(f"  L(N, D): {parametric['error']}")
    elif parametric.get("law"):
        law = parametric["law"]
        lines.append(
            f"  L(N, D) = {law['E']:.3f} + {law['A']:.3g}/N^{law['alpha']:.3f} + {law['B']:.3g}/D^{law['beta']:.3f} "
            f"(log-RMSE {parametric['log_rmse']:.4f})"
        )
    for verdict in (proposals or {}).get("verdicts", []):
        r2 = verdict.get("fit_r2")
        lines.append(
            f"  forward budget {verdict['budget']:.2e}: {verdict['status']} (best d={verdict['best_hidden']}, "
            f"{verdict['runs_below']} below / {verdict['runs_above']} above"
            + (f", parabola R^2 {r2:.2f})" if isinstance(r2, (int, float)) else ")")
        )
    capabilities = fits.get("capabilities") or {}
    fitted_caps = [m for m, fit in capabilities.items() if "error" not in fit]
    if capabilities:
        lines.append(
            f"  capability fits: {len(fitted_caps)} of {len(capabilities)} metrics "
            f"({len(fits.get('references') or [])} reference runs starred)"
        )
    if output_path:
        lines.append(
            f"  plots and fits: {output_path}/ (isoflop_curves.png, compute_optimal.png, capability_*.png, {FITS_FILE})"
        )
    return "\n".join(lines)
