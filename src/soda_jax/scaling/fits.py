"""Compute-optimal fits: isoFLOP parabolas, power laws and the parametric law L(N, D).

* Approach 2 (Hoffmann et al. 2022): at each budget, fit loss as a parabola in log10 N and
  log10 D; the vertices are N* and D*. Bootstrap over runs gives confidence intervals.
  Power laws N* = a C^alpha and D* = b C^beta are then least-squares lines in log-log space.
* Approach 3: L(N, D) = E + A / N^alpha + B / D^beta, fitted by minimising the Huber loss of
  log L (written as a log-sum-exp of the three terms) with L-BFGS from a grid of starting points.

Capability-vs-loss fits live in `soda_jax.scaling.capability`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize
from scipy.special import logsumexp, softmax

logger = logging.getLogger(__name__)

CONFIDENCE_LEVEL = 0.95
"""Central interval reported by the bootstraps."""

MIN_POINTS_PER_PARABOLA = 3


@dataclasses.dataclass(frozen=True)
class Interval:
    """A central confidence interval."""

    low: float
    high: float

    @classmethod
    def of(cls, samples: ArrayLike, level: float = CONFIDENCE_LEVEL) -> Interval:
        tail = 100 * (1 - level) / 2
        low, high = np.percentile(np.asarray(samples, dtype=float), [tail, 100 - tail])
        return cls(float(low), float(high))


@dataclasses.dataclass(frozen=True)
class Parabola:
    """loss = curvature * (x - x_min)^2 + loss_min, with x = log10 of N or D."""

    curvature: float
    x_min: float
    loss_min: float

    def __call__(self, x):
        return self.curvature * (np.asarray(x) - self.x_min) ** 2 + self.loss_min


def fit_parabola(log10_x: np.ndarray, loss: np.ndarray) -> Parabola:
    """Least-squares parabola through (log10 x, loss); fails unless it opens upwards."""
    log10_x, loss = np.asarray(log10_x, float), np.asarray(loss, float)
    if len(np.unique(log10_x)) < MIN_POINTS_PER_PARABOLA:
        raise ValueError(f"a parabola needs {MIN_POINTS_PER_PARABOLA} distinct sizes, got {len(np.unique(log10_x))}")
    a, b, c = np.polyfit(log10_x, loss, 2)
    if a <= 0:
        raise ValueError("loss is not convex in log size at this budget: no interior minimum")
    x_min = -b / (2 * a)
    return Parabola(curvature=float(a), x_min=float(x_min), loss_min=float(c - b * b / (4 * a)))


@dataclasses.dataclass(frozen=True)
class BudgetOptimum:
    """Compute-optimal size and data at one budget."""

    compute: float
    """Training FLOPs C of this budget (mean over its runs)."""
    params_opt: float
    """N*: vertex of the loss-vs-log N parabola."""
    tokens_opt: float
    """D*: vertex of the loss-vs-log D parabola."""
    loss_opt: float
    """Loss at the N* vertex."""
    params_interval: Interval
    """Bootstrap interval of N*."""
    tokens_interval: Interval
    """Bootstrap interval of D*."""
    params_parabola: Parabola
    tokens_parabola: Parabola
    num_runs: int
    vertex_samples: np.ndarray = dataclasses.field(
        default_factory=lambda: np.empty((0, 2)), repr=False, compare=False, metadata={"json": False}
    )
    """(bootstrap, 2) resampled vertices [log10 N*, log10 D*] behind the intervals; the joint
    exponent bootstrap of `fit_compute_optimal` reuses them (not written to scaling_fits.json)."""


def fit_budget(
    compute: np.ndarray,
    params: np.ndarray,
    tokens: np.ndarray,
    loss: np.ndarray,
    *,
    num_bootstrap: int = 1000,
    seed: int = 0,
) -> BudgetOptimum:
    """N*, D* at one budget, with residual-bootstrap intervals (`_bootstrap_vertices`)."""
    log_n, log_d, loss = np.log10(params), np.log10(tokens), np.asarray(loss, float)
    n_parabola, d_parabola = fit_parabola(log_n, loss), fit_parabola(log_d, loss)
    samples = _bootstrap_vertices(
        log_n, log_d, loss, (n_parabola, d_parabola), num_bootstrap, np.random.default_rng(seed)
    )
    return BudgetOptimum(
        compute=float(np.mean(compute)),
        params_opt=10**n_parabola.x_min,
        tokens_opt=10**d_parabola.x_min,
        loss_opt=n_parabola.loss_min,
        params_interval=Interval.of(10 ** samples[:, 0]),
        tokens_interval=Interval.of(10 ** samples[:, 1]),
        params_parabola=n_parabola,
        tokens_parabola=d_parabola,
        num_runs=len(loss),
        vertex_samples=samples,
    )


def _bootstrap_vertices(
    log_n, log_d, loss, parabolas: tuple[Parabola, Parabola], num_bootstrap: int, rng: np.random.Generator
) -> np.ndarray:
    """(num_bootstrap, 2) vertices [log10 N*, log10 D*] of one budget, by a residual bootstrap.

    The sizes of an isoFLOP budget are chosen, not sampled, so the sizes stay fixed and the noise
    is resampled: each parabola's residuals (inflated by sqrt(n / (n - 3)) for its 3 fitted
    coefficients) are drawn with replacement onto its fitted values, the same run's residual for
    both parabolas. Resampling whole runs instead, with ~5 runs a budget, leaves many resamples with
    3 distinct sizes on one side of the optimum, whose extrapolated vertices spread the interval
    over decades. Three runs fit their parabola exactly: no residuals, a point interval. Resamples
    whose parabola is not convex are redrawn.
    """
    count = len(loss)
    inflation = math.sqrt(count / (count - 3)) if count > 3 else 0.0
    fitted, residuals = [], []
    for x, parabola in zip((log_n, log_d), parabolas):
        values = parabola(x)
        fitted.append(values)
        residuals.append((loss - values) * inflation)
    vertices: list[tuple[float, float]] = []
    attempts = 0
    while len(vertices) < num_bootstrap:
        attempts += 1
        if attempts > 20 * num_bootstrap:
            raise ValueError("bootstrap resamples are almost never convex: too few or too noisy runs")
        idx = rng.integers(0, count, count)
        try:
            vertices.append(
                (
                    fit_parabola(log_n, fitted[0] + residuals[0][idx]).x_min,
                    fit_parabola(log_d, fitted[1] + residuals[1][idx]).x_min,
                )
            )
        except ValueError:
            continue
    return np.asarray(vertices)


@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """y = coefficient * C ** exponent."""

    coefficient: float
    exponent: float
    exponent_interval: Interval | None = None
    """Bootstrap interval of the exponent, when computed."""

    def __call__(self, compute):
        return self.coefficient * np.asarray(compute, float) ** self.exponent


def fit_power_law(compute: ArrayLike, values: ArrayLike) -> PowerLaw:
    """Least-squares line in log-log space."""
    compute, values = np.asarray(compute, float), np.asarray(values, float)
    if len(compute) < 2 or np.any(compute <= 0) or np.any(values <= 0):
        raise ValueError("a power law needs at least 2 points with positive compute and values")
    exponent, log_coefficient = np.polyfit(np.log(compute), np.log(values), 1)
    return PowerLaw(coefficient=float(np.exp(log_coefficient)), exponent=float(exponent))


@dataclasses.dataclass(frozen=True)
class ComputeOptimalFit:
    """Approach 2: per-budget optima and the power laws through them."""

    budgets: tuple[BudgetOptimum, ...]
    params_law: PowerLaw
    """N* = a C^alpha."""
    tokens_law: PowerLaw
    """D* = b C^beta."""
    skipped_budgets: tuple[tuple[float, str], ...] = ()
    """(C, why) of each budget left out: fewer than 3 sizes, or no interior minimum."""
    exponent_gap_interval: Interval | None = None
    """Bootstrap interval of beta - alpha (D*'s exponent minus N*'s, from the same resamples)."""
    tokens_faster_share: float | None = None
    """Share of the joint bootstrap resamples in which D* grows faster than N* (beta > alpha)."""


def group_by_budget(compute: np.ndarray, relative_tolerance: float = 0.05) -> np.ndarray:
    """Budget label per run: runs whose C lie within ``relative_tolerance`` of a group's smallest share it."""
    compute = np.asarray(compute, float)
    labels = np.empty(len(compute), dtype=int)
    group, anchor = -1, -np.inf
    for i in np.argsort(compute):
        if compute[i] > anchor * (1 + relative_tolerance):
            group, anchor = group + 1, compute[i]
        labels[i] = group
    return labels


def fit_compute_optimal(
    compute: np.ndarray,
    params: np.ndarray,
    tokens: np.ndarray,
    loss: np.ndarray,
    *,
    num_bootstrap: int = 1000,
    seed: int = 0,
) -> ComputeOptimalFit:
    """Approach 2 over a whole sweep. Budgets are found by grouping runs of similar C.

    Exponent intervals come from a joint bootstrap: the i-th resample of every budget (the same
    samples behind its own intervals, `fit_budget`) gives one set of vertices, and the power laws
    are refitted through them.
    """
    compute, params, tokens, loss = (np.asarray(v, float) for v in (compute, params, tokens, loss))
    labels = group_by_budget(compute)
    budgets, skipped = [], []
    for label in np.unique(labels):
        members = labels == label
        budget_compute = float(compute[members].mean())
        try:
            if len(np.unique(params[members])) < MIN_POINTS_PER_PARABOLA:
                raise ValueError(f"{len(np.unique(params[members]))} sizes, a parabola needs {MIN_POINTS_PER_PARABOLA}")
            optimum = fit_budget(
                compute[members],
                params[members],
                tokens[members],
                loss[members],
                num_bootstrap=num_bootstrap,
                seed=seed + int(label),
            )
        except ValueError as error:  # one unusable budget does not sink the others
            logger.warning("budget %.2e skipped: %s", budget_compute, error)
            skipped.append((budget_compute, str(error)))
            continue
        budgets.append(optimum)
    if len(budgets) < 2:
        reasons = "; ".join(f"{c:.2e}: {why}" for c, why in skipped)
        raise ValueError(f"need at least 2 usable budgets, got {len(budgets)} (skipped {reasons or 'none'})")
    log_c = np.log([b.compute for b in budgets])
    samples = np.stack([b.vertex_samples for b in budgets], axis=1)  # (bootstrap, budget, [log10 N*, log10 D*])
    n_exponents = [np.polyfit(log_c, s[:, 0] * np.log(10), 1)[0] for s in samples]
    d_exponents = [np.polyfit(log_c, s[:, 1] * np.log(10), 1)[0] for s in samples]
    c = [b.compute for b in budgets]
    n_law = fit_power_law(c, [b.params_opt for b in budgets])
    d_law = fit_power_law(c, [b.tokens_opt for b in budgets])
    return ComputeOptimalFit(
        budgets=tuple(budgets),
        params_law=dataclasses.replace(n_law, exponent_interval=Interval.of(n_exponents)),
        tokens_law=dataclasses.replace(d_law, exponent_interval=Interval.of(d_exponents)),
        skipped_budgets=tuple(skipped),
        exponent_gap_interval=Interval.of(np.subtract(d_exponents, n_exponents)),
        tokens_faster_share=float(np.mean(np.greater(d_exponents, n_exponents))),
    )


# ---------------------------------------------------------------- approach 3: L(N, D)

HUBER_DELTA = 1e-3
"""Chinchilla's Huber threshold on log-loss residuals."""

_LBFGS_OPTIONS = {"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-12}
"""The objective is tiny (Huber of ~1e-3 residuals, ~1e-5 in total): scipy's default tolerances
stop L-BFGS far from the optimum along the flat A-alpha valley."""

_BOOTSTRAP_LBFGS_OPTIONS = {"maxiter": 10_000, "ftol": 1e-13, "gtol": 1e-9}
"""Looser for the many bootstrap refits (8x faster), still tight enough to leave the start."""


@dataclasses.dataclass(frozen=True)
class ParametricLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __call__(self, params, tokens):
        return (
            self.E + self.A / np.asarray(params, float) ** self.alpha + self.B / np.asarray(tokens, float) ** self.beta
        )

    def compute_optimal_exponents(self) -> tuple[float, float]:
        """N* ~ C^(beta/(alpha+beta)), D* ~ C^(alpha/(alpha+beta)) under C proportional to N D."""
        total = self.alpha + self.beta
        return self.beta / total, self.alpha / total


@dataclasses.dataclass(frozen=True)
class ParametricInitGrid:
    """Starting points for L-BFGS (Chinchilla's grid by default, coarser to stay fast)."""

    log_A: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
    """Starting values of a = log A."""
    log_B: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
    """Starting values of b = log B."""
    log_E: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
    """Starting values of e = log E."""
    alpha: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
    """Starting values of alpha."""
    beta: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
    """Starting values of beta."""
    polished_starts: int = 64
    """How many grid points (those with the lowest objective) L-BFGS refines. Refining all 5,400
    takes minutes and, on synthetic and real sweeps, lands in the same optimum."""

    def points(self) -> np.ndarray:
        return np.array(list(itertools.product(self.log_A, self.log_B, self.log_E, self.alpha, self.beta)))


def _huber_objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray, delta: float):
    """Sum of Huber(log L_pred - log L) with theta = (log A, log B, log E, alpha, beta); value and gradient."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    predicted = logsumexp(terms, axis=0)
    residual = predicted - log_loss
    small = np.abs(residual) <= delta
    value = np.where(small, 0.5 * residual**2, delta * (np.abs(residual) - 0.5 * delta)).sum()
    d_residual = np.where(small, residual, delta * np.sign(residual))
    weights = softmax(terms, axis=0) * d_residual  # d predicted / d term_k = softmax_k
    gradient = np.array(
        [
            weights[0].sum(),
            weights[1].sum(),
            weights[2].sum(),
            -(weights[0] * log_n).sum(),
            -(weights[1] * log_d).sum(),
        ]
    )
    return value, gradient


def fit_parametric(
    params: np.ndarray,
    tokens: np.ndarray,
    loss: np.ndarray,
    *,
    init_grid: ParametricInitGrid = ParametricInitGrid(),
    delta: float = HUBER_DELTA,
) -> ParametricLaw:
    """Approach 3: best L-BFGS solution over the grid of initialisations."""
    log_n, log_d = np.log(np.asarray(params, float)), np.log(np.asarray(tokens, float))
    log_loss = np.log(np.asarray(loss, float))
    if len(log_loss) < 5:
        raise ValueError(f"L(N, D) has 5 parameters; got only {len(log_loss)} runs")
    starts = init_grid.points()
    # Rank the starts by their objective and refine only the most promising (see polished_starts).
    start_values = np.array([_huber_objective(s, log_n, log_d, log_loss, delta)[0] for s in starts])
    best = None
    for start in starts[np.argsort(start_values)[: init_grid.polished_starts]]:
        result = optimize.minimize(
            _huber_objective, start, args=(log_n, log_d, log_loss, delta), jac=True, method="L-BFGS-B"
        )
        if best is None or result.fun < best.fun:
            best = result
    assert best is not None  # init_grid.polished_starts >= 1
    # scipy's default tolerances rank the starts well but stop short of the optimum: polish the winner.
    best = optimize.minimize(
        _huber_objective,
        best.x,
        args=(log_n, log_d, log_loss, delta),
        jac=True,
        method="L-BFGS-B",
        options=_LBFGS_OPTIONS,
    )
    a, b, e, alpha, beta = best.x
    return ParametricLaw(
        E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha), beta=float(beta)
    )


def bootstrap_parametric(
    params: np.ndarray,
    tokens: np.ndarray,
    loss: np.ndarray,
    fitted: ParametricLaw,
    *,
    num_bootstrap: int = 100,
    seed: int = 0,
    delta: float = HUBER_DELTA,
) -> list[ParametricLaw]:
    """Refits on resampled runs, each started from ``fitted`` (for prediction intervals)."""
    params, tokens, loss = (np.asarray(v, float) for v in (params, tokens, loss))
    rng = np.random.default_rng(seed)
    start = np.array([np.log(fitted.A), np.log(fitted.B), np.log(fitted.E), fitted.alpha, fitted.beta])
    laws = []
    for _ in range(num_bootstrap):
        idx = rng.integers(0, len(loss), len(loss))
        result = optimize.minimize(
            _huber_objective,
            start,
            args=(np.log(params[idx]), np.log(tokens[idx]), np.log(loss[idx]), delta),
            jac=True,
            method="L-BFGS-B",
            options=_BOOTSTRAP_LBFGS_OPTIONS,
        )
        a, b, e, alpha, beta = result.x
        laws.append(
            ParametricLaw(
                E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha), beta=float(beta)
            )
        )
    return laws


# ------------------------------------------------- is L(N, D) identified by these runs?

PROFILE_GRID = tuple(float(x) for x in np.round(np.geomspace(0.03, 3.0, 21), 4))
"""Exponent values at which the profile likelihood of alpha and beta is evaluated."""

_PROFILE_LBFGS_OPTIONS = {"maxiter": 2000, "ftol": 1e-11, "gtol": 1e-8}
"""RSS of log-loss (~1e-3 and up): looser than the Huber fits' tolerances."""

PROFILE_CHI2_95 = 3.841
"""Chi-squared(1) 95% quantile: a profile interval holds the exponents whose deviance is below it."""


@dataclasses.dataclass(frozen=True)
class ExponentProfile:
    """Profile likelihood of one exponent of L(N, D), the other four parameters refitted at each value."""

    name: str
    """``alpha`` (parameters) or ``beta`` (tokens)."""
    grid: tuple[float, ...]
    """Exponent values evaluated (the scanned grid plus the unconstrained optimum)."""
    deviance: tuple[float, ...]
    """n log(RSS(value) / RSS_min) of log-loss residuals (Gaussian errors): 0 at the best value."""
    best: float
    """The grid value with the lowest deviance."""
    interval: Interval | None
    """The exponents with deviance < `PROFILE_CHI2_95`, widened to the nearest evaluated values
    outside them; None when that set reaches an end of the grid (the data do not bound the exponent)."""


@dataclasses.dataclass(frozen=True)
class ParametricIdentification:
    """Whether the runs pin down L(N, D)'s exponents (both profile intervals closed inside the grid)."""

    identified: bool
    alpha: ExponentProfile
    beta: ExponentProfile
    reason: str
    """Why not (empty when identified)."""


def _squared_log_residuals(theta: np.ndarray, log_n, log_d, log_loss) -> tuple[float, np.ndarray]:
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    residual = logsumexp(terms, axis=0) - log_loss
    weights = softmax(terms, axis=0) * 2 * residual
    gradient = np.array(
        [weights[0].sum(), weights[1].sum(), weights[2].sum(), -(weights[0] * log_n).sum(), -(weights[1] * log_d).sum()]
    )
    return float(np.sum(residual**2)), gradient


def _minimize_rss(start: np.ndarray, log_n, log_d, log_loss, fixed: tuple[int, float] | None = None):
    bounds: list[tuple[float | None, float | None]] = [(None, None)] * 5
    start = start.copy()
    if fixed is not None:
        index, value = fixed
        start[index] = value
        bounds[index] = (value, value)
    return optimize.minimize(
        _squared_log_residuals,
        start,
        args=(log_n, log_d, log_loss),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options=_PROFILE_LBFGS_OPTIONS,
    )


def _profile(index: int, grid: tuple[float, ...], optimum: np.ndarray, log_n, log_d, log_loss) -> np.ndarray:
    """Least RSS of log-loss with parameter ``index`` (3: alpha, 4: beta) held at each grid value.

    Two starts per value, the better kept: the neighbour's solution (continuation outwards from the
    optimum) and the optimum with its prefactor rescaled so that term keeps its size at the median
    N (or D). Fresh multi-starts find other basins only by chance and make the profile jagged.
    """
    log_x = log_n if index == 3 else log_d
    rss = np.empty(len(grid))
    middle = int(np.argmin(np.abs(np.log(np.asarray(grid)) - np.log(max(optimum[index], 1e-6)))))
    for walk in (range(middle, len(grid)), range(middle - 1, -1, -1)):
        previous = optimum
        for i in walk:
            rescaled = optimum.copy()
            rescaled[index - 3] += (grid[i] - optimum[index]) * float(np.median(log_x))  # a (or b) keeps A/N^alpha
            results = [
                _minimize_rss(start, log_n, log_d, log_loss, fixed=(index, grid[i])) for start in (previous, rescaled)
            ]
            best = min(results, key=lambda r: r.fun)
            rss[i], previous = float(best.fun), best.x
    return rss


def profile_exponents(
    params: ArrayLike,
    tokens: ArrayLike,
    loss: ArrayLike,
    *,
    grid: tuple[float, ...] = PROFILE_GRID,
) -> ParametricIdentification:
    """Profile likelihoods of alpha and beta: is L(N, D) identified by these runs?

    An isoFLOP sweep samples N and D along a few anti-diagonals; when they span too little of the
    plane, whole families of (E, A, alpha) trade off with near-equal error and the fitted exponents
    mean nothing. Each exponent's profile (the other four parameters refitted at every grid value)
    shows it: identified when both 95% profile intervals close inside the grid.
    """
    log_n, log_d = np.log(np.asarray(params, float)), np.log(np.asarray(tokens, float))
    log_loss = np.log(np.asarray(loss, float))
    if len(log_loss) < 6:
        raise ValueError(f"profiling L(N, D)'s 5 parameters needs at least 6 runs, got {len(log_loss)}")
    law = fit_parametric(np.exp(log_n), np.exp(log_d), np.exp(log_loss))
    optimum = _minimize_rss(
        np.array([np.log(law.A), np.log(law.B), np.log(law.E), law.alpha, law.beta]), log_n, log_d, log_loss
    )
    rss = {
        name: _profile(index, grid, optimum.x, log_n, log_d, log_loss) for name, index in (("alpha", 3), ("beta", 4))
    }
    floor = max(min([float(optimum.fun), *(float(r.min()) for r in rss.values())]), 1e-300)
    profiles = {}
    for (name, values), index in zip(rss.items(), (3, 4)):
        # the unconstrained optimum is a point of both profiles: with it, an interval narrower than the
        # grid step is still seen
        at = float(optimum.x[index])
        points = sorted([*zip(grid, values), *([(at, float(optimum.fun))] if grid[0] < at < grid[-1] else [])])
        xs = np.array([x for x, _ in points])
        deviance = len(log_loss) * np.log(np.maximum([v for _, v in points], floor) / floor)
        inside = np.flatnonzero(deviance < PROFILE_CHI2_95)
        closed = inside.size > 0 and inside[0] > 0 and inside[-1] < len(xs) - 1
        profiles[name] = ExponentProfile(
            name=name,
            grid=tuple(float(x) for x in xs),
            deviance=tuple(float(d) for d in deviance),
            best=float(xs[int(np.argmin(deviance))]),
            # the interval reaches to the first grid values outside it (a conservative bracket)
            interval=Interval(float(xs[inside[0] - 1]), float(xs[inside[-1] + 1])) if closed else None,
        )
    open_ = [name for name, p in profiles.items() if p.interval is None]
    reason = (
        (
            f"the 95% profile interval of {' and '.join(open_)} reaches the end of the scanned range "
            f"[{grid[0]}, {grid[-1]}]: the runs do not bound it"
        )
        if open_
        else ""
    )
    return ParametricIdentification(identified=not open_, alpha=profiles["alpha"], beta=profiles["beta"], reason=reason)
