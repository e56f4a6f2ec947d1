"""Capability-vs-loss fits: an eval metric as a function of the fitted loss (held-out speech NLL by default).

Two candidate curves per metric, chosen by leave-one-out error (the curve that predicts held-out
models better wins, so a 4-parameter sigmoid has to earn its extra parameters):

* ``sigmoid``: y = low + (high - low) / (1 + exp(slope * (loss - midpoint))): bounded metrics
  (accuracies) that saturate at chance and at a ceiling. A negative slope fits rising metrics.
* ``power_law``: y = scale * loss ** exponent: unbounded error rates (WER) that fall with loss.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import optimize

from soda_jax.eval.report import SODA_REPORTED as REPORTED_SCORES

logger = logging.getLogger(__name__)

MIN_POINTS = 4
"""Below this, leave-one-out cannot compare a 4-parameter curve with anything."""

SIGMOID_SLACK = 0.5
"""Sigmoid asymptotes may lie at most this many value-spans beyond the observed metric range."""

SIGMOID_MIDPOINT_STARTS = 5
"""Starting midpoints tried, spread over one loss-range either side of the data."""

SIGMOID_MAX_EVALUATIONS = 500
"""Evaluations a sigmoid fit from one start may take before that start is given up (a start that
converges takes far fewer; one that cannot, because the data have no sigmoid shape, would otherwise
run to scipy's 5,000 from each of its starts and each left-out point)."""

SODA_REPORTED = REPORTED_SCORES
"""SODA's eight reported scores (`soda_jax.eval.report.SODA_REPORTED`: probably SODA-4B's, each marked
so), drawn on the capability plots for reference. Their losses are on another vocabulary and corpus,
so they are lines, not points: where our curves would have to climb to."""

SIGMOID = "sigmoid"
POWER_LAW = "power_law"


@dataclasses.dataclass(frozen=True)
class CapabilityFit:
    """A fitted curve metric(loss) and how well each candidate predicted held-out points."""

    metric: str
    """Eval metric name."""
    model: str
    """Chosen curve: ``sigmoid`` or ``power_law``."""
    coefficients: dict[str, float]
    """Parameters of the chosen curve (see `predict`)."""
    held_out_rmse: dict[str, float]
    """Leave-one-out RMSE per candidate (inf where a candidate could not be fitted)."""
    num_points: int
    """Runs the fit used."""

    def predict(self, loss):
        return _CURVES[self.model](np.asarray(loss, float), **self.coefficients)


def _sigmoid(loss, low, high, slope, midpoint):
    return low + (high - low) / (1 + np.exp(np.clip(slope * (loss - midpoint), -60, 60)))


def _sigmoid_jacobian(loss, low, high, slope, midpoint):
    """d `_sigmoid` / d (low, high, slope, midpoint): analytic, so a fit needs one evaluation per
    iteration instead of five (the leave-one-out sigmoid fits were ~90% of an analysis step)."""
    z = slope * (loss - midpoint)
    inside = np.abs(z) < 60  # where `_sigmoid` clips z, it is flat in slope and midpoint
    s = 1 / (1 + np.exp(np.clip(z, -60, 60)))
    ds_dz = np.where(inside, -s * (1 - s), 0.0) * (high - low)
    return np.stack([1 - s, s, ds_dz * (loss - midpoint), -ds_dz * slope], axis=-1)


def _power_law(loss, scale, exponent):
    return scale * loss**exponent


_CURVES: dict[str, Callable[..., Any]] = {SIGMOID: _sigmoid, POWER_LAW: _power_law}


def _fit_sigmoid(loss: np.ndarray, y: np.ndarray) -> dict[str, float]:
    spread = max(float(np.ptp(loss)), 1e-6)
    value_span = max(float(np.ptp(y)), 1e-6)
    # Keep the asymptotes and the midpoint near the data: an unbounded sigmoid with a far-away
    # midpoint is just an exponential, and would pass for a power law with an extra parameter.
    bounds = (
        [y.min() - SIGMOID_SLACK * value_span, y.min() - SIGMOID_SLACK * value_span, -np.inf, loss.min() - spread],
        [y.max() + SIGMOID_SLACK * value_span, y.max() + SIGMOID_SLACK * value_span, np.inf, loss.max() + spread],
    )
    best = None
    # The midpoint can sit outside the observed losses (only one tail seen); try several.
    for midpoint in np.linspace(loss.min() - spread, loss.max() + spread, SIGMOID_MIDPOINT_STARTS):
        for slope in (4 / spread, -4 / spread):  # metric falling / rising with loss
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optimize.OptimizeWarning)
                    coefficients, _ = optimize.curve_fit(
                        _sigmoid,
                        loss,
                        y,
                        p0=[y.min(), y.max(), slope, midpoint],
                        bounds=bounds,
                        maxfev=SIGMOID_MAX_EVALUATIONS,
                        jac=_sigmoid_jacobian,
                    )
            except RuntimeError:
                continue
            error = float(np.sum((_sigmoid(loss, *coefficients) - y) ** 2))
            if np.all(np.isfinite(coefficients)) and (best is None or error < best[0]):
                best = (error, coefficients)
    if best is None:
        raise RuntimeError("sigmoid fit did not converge")
    return dict(zip(("low", "high", "slope", "midpoint"), map(float, best[1])))


def _fit_power_law(loss: np.ndarray, y: np.ndarray) -> dict[str, float]:
    if np.any(y <= 0) or np.any(loss <= 0):
        raise ValueError("a power law needs positive losses and metric values")
    # Start from the log-log line, then least squares in the metric's own units, the units the
    # held-out comparison with the sigmoid is made in.
    exponent, log_scale = np.polyfit(np.log(loss), np.log(y), 1)
    (scale, exponent), _ = optimize.curve_fit(_power_law, loss, y, p0=[math.exp(log_scale), exponent], maxfev=5000)
    return {"scale": float(scale), "exponent": float(exponent)}


_FITTERS: dict[str, Callable[..., dict[str, float]]] = {SIGMOID: _fit_sigmoid, POWER_LAW: _fit_power_law}


def _leave_one_out_rmse(model: str, loss: np.ndarray, y: np.ndarray) -> float:
    errors = []
    for i in range(len(loss)):
        keep = np.arange(len(loss)) != i
        try:
            coefficients = _FITTERS[model](loss[keep], y[keep])
        except (RuntimeError, ValueError):
            return math.inf
        errors.append(float(_CURVES[model](loss[i], **coefficients)) - y[i])
    return float(np.sqrt(np.mean(np.square(errors))))


def fit_capability(metric: str, loss, values) -> CapabilityFit:
    """Fit both curves to (validation loss, metric) and keep the one with lower held-out error."""
    loss, values = np.asarray(loss, float), np.asarray(values, float)
    finite = np.isfinite(loss) & np.isfinite(values)
    if finite.sum() < len(loss):
        logger.warning("%s: %d runs with missing values skipped", metric, len(loss) - finite.sum())
    loss, values = loss[finite], values[finite]
    if len(loss) < MIN_POINTS:
        raise ValueError(f"{metric}: need at least {MIN_POINTS} runs with results, got {len(loss)}")
    held_out = {model: _leave_one_out_rmse(model, loss, values) for model in _FITTERS}
    chosen = min(held_out, key=lambda model: held_out[model])
    if math.isinf(held_out[chosen]):
        raise ValueError(f"{metric}: neither a sigmoid nor a power law could be fitted")
    return CapabilityFit(
        metric=metric,
        model=chosen,
        coefficients=_FITTERS[chosen](loss, values),
        held_out_rmse=held_out,
        num_points=len(loss),
    )
