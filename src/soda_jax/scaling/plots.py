"""Scaling-law figures (matplotlib, Agg backend, PNG written atomically)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import LogFormatterSciNotation, LogLocator  # noqa: E402

from soda_jax import fileio  # noqa: E402
from soda_jax.eval.report import ReportedScore  # noqa: E402
from soda_jax.scaling.capability import CapabilityFit  # noqa: E402
from soda_jax.scaling.fits import (  # noqa: E402
    PROFILE_CHI2_95,
    ComputeOptimalFit,
    ParametricIdentification,
    ParametricLaw,
    group_by_budget,
)

DPI = 120
CURVE_POINTS = 200


def save_png(figure: plt.Figure, url: str) -> None:
    """Write ``figure`` as PNG to ``url`` (local or fsspec) atomically, then close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    fileio.atomic_write_bytes(url, buffer.getvalue())


def _log_x(axes) -> None:
    """Log x axis with minor ticks at 2 and 5, labelled when the span is under two decades (as a
    sweep's budgets and sizes often are): readable labels instead of none or overlapping ones."""
    axes.set_xscale("log")
    axes.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    axes.xaxis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(2, 2)))


def _budget_colors(count: int):
    return plt.cm.viridis(np.linspace(0, 0.9, max(count, 1)))


def isoflop_curves(
    compute, params, loss, fit: ComputeOptimalFit | None, loss_label: str = "final validation loss"
) -> plt.Figure:
    """Loss vs N per budget, with each fitted parabola and its minimum."""
    compute, params, loss = (np.asarray(v, float) for v in (compute, params, loss))
    labels = group_by_budget(compute)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    colors = _budget_colors(labels.max() + 1)
    fitted = {round(np.log10(b.compute), 2): b for b in (fit.budgets if fit else ())}
    for label in np.unique(labels):
        members = labels == label
        c = compute[members].mean()
        optimum = fitted.get(round(np.log10(c), 2))
        name = f"C={c:.1e}" if optimum is not None or fit is None else f"C={c:.1e} (not fitted)"
        axes.scatter(params[members], loss[members], color=colors[label], label=name, s=18)
        if optimum is not None:
            x = np.linspace(np.log10(params[members].min()), np.log10(params[members].max()), CURVE_POINTS)
            axes.plot(10**x, optimum.params_parabola(x), color=colors[label], lw=1)
            axes.scatter(
                [optimum.params_opt], [optimum.loss_opt], color=colors[label], marker="*", s=120, edgecolor="k"
            )
    _log_x(axes)
    axes.set_xlabel("parameters N")
    axes.set_ylabel(loss_label)
    axes.set_title("isoFLOP curves (stars: fitted minima)")
    axes.legend(fontsize=7)
    return figure


def compute_optimal(fit: ComputeOptimalFit) -> plt.Figure:
    """N* and D* vs C, with bootstrap error bars and the fitted power laws."""
    figure, (n_axes, d_axes) = plt.subplots(1, 2, figsize=(10, 4))
    c = np.array([b.compute for b in fit.budgets])
    line_c = np.logspace(np.log10(c.min()) - 0.3, np.log10(c.max()) + 0.3, CURVE_POINTS)
    for axes, law, optima, intervals, name in (
        (n_axes, fit.params_law, [b.params_opt for b in fit.budgets], [b.params_interval for b in fit.budgets], "N*"),
        (d_axes, fit.tokens_law, [b.tokens_opt for b in fit.budgets], [b.tokens_interval for b in fit.budgets], "D*"),
    ):
        values = np.array(optima)
        errors = np.array(
            [[v - i.low for v, i in zip(values, intervals)], [i.high - v for v, i in zip(values, intervals)]]
        )
        axes.errorbar(c, values, yerr=np.clip(errors, 0, None), fmt="o", capsize=3)
        axes.plot(line_c, law(line_c), label=f"{name} = {law.coefficient:.3g} C^{law.exponent:.3f}")
        _log_x(axes)
        axes.set_yscale("log")
        axes.set_xlabel("training FLOPs C")
        axes.set_ylabel(name)
        axes.legend(fontsize=8)
    return figure


def parametric_residuals(law: ParametricLaw, params, tokens, loss, compute) -> plt.Figure:
    """Predicted vs observed loss, and log-residuals vs C."""
    params, tokens, loss, compute = (np.asarray(v, float) for v in (params, tokens, loss, compute))
    predicted = law(params, tokens)
    figure, (scatter_axes, residual_axes) = plt.subplots(1, 2, figsize=(10, 4))
    scatter_axes.scatter(loss, predicted, s=14)
    bounds = [min(loss.min(), predicted.min()), max(loss.max(), predicted.max())]
    scatter_axes.plot(bounds, bounds, "k--", lw=0.8)
    scatter_axes.set_xlabel("observed loss")
    scatter_axes.set_ylabel("L(N, D)")
    scatter_axes.set_title(
        f"E={law.E:.3f} A={law.A:.3g} B={law.B:.3g} alpha={law.alpha:.3f} beta={law.beta:.3f}", fontsize=8
    )
    residual_axes.scatter(compute, np.log(predicted) - np.log(loss), s=14)
    residual_axes.axhline(0, color="k", lw=0.8)
    _log_x(residual_axes)
    residual_axes.set_xlabel("training FLOPs C")
    residual_axes.set_ylabel("log L(N, D) - log loss")
    return figure


def capability_vs_loss(
    fit: CapabilityFit,
    loss,
    values,
    references: dict[str, tuple[float, float]],
    reported: ReportedScore | None = None,
    loss_label: str = "validation loss",
) -> plt.Figure:
    """Metric vs the fitted loss for the sweep, the fitted curve, the reference models (full-size runs)
    as labelled stars, and SODA's ``reported`` score as a horizontal line naming its model."""
    loss, values = np.asarray(loss, float), np.asarray(values, float)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.scatter(loss, values, s=16, label="sweep runs")
    all_losses = [*loss[np.isfinite(loss)], *(x for x, _ in references.values())]
    x = np.linspace(min(all_losses), max(all_losses), CURVE_POINTS)
    axes.plot(x, fit.predict(x), label=f"{fit.model} (held-out RMSE {fit.held_out_rmse[fit.model]:.3g})")
    for i, (name, (reference_loss, reference_value)) in enumerate(references.items()):
        axes.scatter(
            [reference_loss],
            [reference_value],
            marker="*",
            s=180,
            edgecolor="k",
            zorder=3,
            color="gold",
            label="reference runs" if i == 0 else None,
        )
        axes.annotate(name, (reference_loss, reference_value), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if reported is not None:
        axes.axhline(
            reported.value,
            color="grey",
            linestyle="--",
            linewidth=1,
            label=f"{reported.model_label} reported {reported.as_reported} (other vocab and loss scale)",
        )
    axes.set_xlabel(loss_label)
    axes.set_ylabel(fit.metric)
    axes.invert_xaxis()  # better models to the right
    axes.legend(fontsize=8)
    return figure


def exponent_profiles(identification: ParametricIdentification) -> plt.Figure:
    """Deviance of L(N, D)'s alpha and beta profiles, with the 95% threshold."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for ax, profile in zip(axes, (identification.alpha, identification.beta)):
        ax.plot(profile.grid, profile.deviance, marker="o", markersize=3)
        ax.axhline(PROFILE_CHI2_95, color="grey", linestyle="--", linewidth=1, label="95% threshold")
        ax.set_xscale("log")
        ax.set_xlabel(profile.name)
        bounded = (
            "unbounded" if profile.interval is None else f"[{profile.interval.low:.2g}, {profile.interval.high:.2g}]"
        )
        ax.set_title(f"{profile.name}: 95% profile interval {bounded}", fontsize=9)
    axes[0].set_ylabel("deviance n log(RSS / RSS_min)")
    axes[0].legend(fontsize=8)
    figure.suptitle("L(N, D) " + ("identified" if identification.identified else "not identified"), fontsize=10)
    return figure
