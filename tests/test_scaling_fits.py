"""Fits recover known laws from synthetic sweeps with noise."""

import numpy as np
import pytest

from soda_jax.scaling import capability, fits

BUDGETS = np.logspace(18.5, 20.5, 7)
N_EXPONENT, D_EXPONENT = 0.367, 0.633  # D = C / (6 N) on these synthetic sweeps
TRUE_LAW = fits.ParametricLaw(E=1.8, A=400.0, B=1500.0, alpha=0.34, beta=0.28)


def synthetic_parabola_sweep(rng, noise=0.002, sizes_per_budget=9):
    """isoFLOP curves: loss quadratic in log10 N around N* = 0.05 C^0.367."""
    compute, params, tokens, loss = [], [], [], []
    for c in BUDGETS:
        n_opt = 0.05 * c**N_EXPONENT
        log_n = np.log10(n_opt) + np.linspace(-0.6, 0.6, sizes_per_budget)
        n = 10**log_n
        floor = 2.0 + 30 * c**-0.08
        compute += [c] * len(n)
        params += list(n)
        tokens += list(c / (6 * n))
        loss += list(floor + 0.4 * (log_n - np.log10(n_opt)) ** 2 + rng.normal(0, noise, len(n)))
    return tuple(map(np.asarray, (compute, params, tokens, loss)))


def synthetic_parametric_sweep(rng, noise=0.005):
    """Losses from TRUE_LAW on an isoFLOP grid, multiplicative log-normal noise."""
    n = np.tile(np.logspace(7.5, 10, 8), len(BUDGETS))
    c = np.repeat(BUDGETS, 8)
    d = c / (6 * n)
    return n, d, TRUE_LAW(n, d) * np.exp(rng.normal(0, noise, len(n)))


def test_parabola_vertex_is_exact_without_noise():
    x = np.linspace(8, 10, 7)
    parabola = fits.fit_parabola(x, 0.3 * (x - 9.2) ** 2 + 2.5)
    assert parabola.x_min == pytest.approx(9.2)
    assert parabola.loss_min == pytest.approx(2.5)


def test_concave_budget_is_rejected():
    x = np.linspace(8, 10, 5)
    with pytest.raises(ValueError, match="not convex"):
        fits.fit_parabola(x, -((x - 9) ** 2))


def test_isoflop_parabolas_recover_n_and_d_exponents():
    compute, params, tokens, loss = synthetic_parabola_sweep(np.random.default_rng(0))
    fit = fits.fit_compute_optimal(compute, params, tokens, loss, num_bootstrap=200)
    assert len(fit.budgets) == len(BUDGETS)
    assert fit.params_law.exponent == pytest.approx(N_EXPONENT, abs=0.02)
    assert fit.tokens_law.exponent == pytest.approx(D_EXPONENT, abs=0.02)
    assert fit.params_law.coefficient == pytest.approx(0.05, rel=0.3)
    for law, truth in ((fit.params_law, N_EXPONENT), (fit.tokens_law, D_EXPONENT)):
        assert law.exponent_interval.low < truth < law.exponent_interval.high
    # D* grows faster than N* here (0.633 > 0.367), in every resample
    assert fit.exponent_gap_interval.low < D_EXPONENT - N_EXPONENT < fit.exponent_gap_interval.high
    assert fit.tokens_faster_share == 1.0
    for optimum in fit.budgets:
        assert optimum.params_interval.low < optimum.params_opt < optimum.params_interval.high
        assert optimum.params_opt == pytest.approx(0.05 * optimum.compute**N_EXPONENT, rel=0.1)


def test_budget_without_interior_minimum_is_skipped_and_reported():
    compute, params, tokens, loss = synthetic_parabola_sweep(np.random.default_rng(0))
    smallest = compute == BUDGETS[0]
    loss = np.where(smallest, 5.0 - np.log10(params), loss)  # falling in N: the minimum lies beyond the grid
    fit = fits.fit_compute_optimal(compute, params, tokens, loss, num_bootstrap=50)
    assert len(fit.budgets) == len(BUDGETS) - 1
    assert [c for c, _ in fit.skipped_budgets] == [pytest.approx(BUDGETS[0])]
    assert "not convex" in fit.skipped_budgets[0][1]
    assert fit.params_law.exponent == pytest.approx(N_EXPONENT, abs=0.02)  # the other budgets still fit

    usable = compute <= BUDGETS[1]
    with pytest.raises(ValueError, match="need at least 2 usable budgets.*not convex"):
        fits.fit_compute_optimal(compute[usable], params[usable], tokens[usable], loss[usable], num_bootstrap=50)


def test_bootstrap_interval_widens_with_noise():
    quiet = fits.fit_compute_optimal(
        *synthetic_parabola_sweep(np.random.default_rng(1), noise=0.001), num_bootstrap=200
    )
    noisy = fits.fit_compute_optimal(*synthetic_parabola_sweep(np.random.default_rng(1), noise=0.02), num_bootstrap=200)
    width = lambda law: law.exponent_interval.high - law.exponent_interval.low  # noqa: E731
    assert width(noisy.params_law) > 3 * width(quiet.params_law)


def test_five_run_budgets_get_intervals_that_cover_the_truth():
    # The mini sweep's design: 4 budgets, 5 sizes each, 0.02 of noise. The residual bootstrap keeps
    # the chosen sizes and resamples the noise: its 95% exponent interval should hold the true
    # exponent about 95% of the time (here >= 80% of 40 replicates) and stay a bounded width.
    covered, widths = 0, []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        compute, params, tokens, loss = synthetic_parabola_sweep(rng, noise=0.02, sizes_per_budget=5)
        keep = compute <= BUDGETS[3]
        fit = fits.fit_compute_optimal(
            compute[keep], params[keep], tokens[keep], loss[keep], num_bootstrap=100, seed=seed
        )
        interval = fit.params_law.exponent_interval
        covered += interval.low <= N_EXPONENT <= interval.high
        widths.append(interval.high - interval.low)
    assert covered >= 32
    assert np.median(widths) < 0.3


def test_group_by_budget_tolerates_one_percent_misses():
    compute = np.array([1e18, 1.009e18, 0.995e18, 3e18, 3.02e18, 1e19])
    labels = fits.group_by_budget(compute)
    assert labels.tolist() == [0, 0, 0, 1, 1, 2]


def test_parametric_fit_recovers_known_law():
    n, d, loss = synthetic_parametric_sweep(np.random.default_rng(0))
    law = fits.fit_parametric(n, d, loss)
    assert law.alpha == pytest.approx(TRUE_LAW.alpha, abs=0.02)
    assert law.beta == pytest.approx(TRUE_LAW.beta, abs=0.02)
    assert law.E == pytest.approx(TRUE_LAW.E, abs=0.1)
    residual = np.log(law(n, d)) - np.log(loss)
    assert np.sqrt(np.mean(residual**2)) < 0.01


def test_parametric_bootstrap_brackets_the_truth():
    n, d, loss = synthetic_parametric_sweep(np.random.default_rng(2))
    law = fits.fit_parametric(n, d, loss)
    laws = fits.bootstrap_parametric(n, d, loss, law, num_bootstrap=40)
    alphas = np.array([b.alpha for b in laws])
    assert alphas.std() > 0
    interval = fits.Interval.of(alphas)
    assert interval.low - 0.02 < TRUE_LAW.alpha < interval.high + 0.02


def test_power_law_is_exact_on_exact_data():
    c = np.logspace(18, 21, 5)
    law = fits.fit_power_law(c, 3.0 * c**0.5)
    assert law.exponent == pytest.approx(0.5)
    assert law.coefficient == pytest.approx(3.0)


def test_capability_picks_sigmoid_for_saturating_accuracy():
    rng = np.random.default_rng(0)
    loss = np.linspace(2.0, 4.0, 12)
    accuracy = 0.5 + 0.3 / (1 + np.exp(5 * (loss - 3.0))) + rng.normal(0, 0.003, loss.size)
    fit = capability.fit_capability("sblimp", loss, accuracy)
    assert fit.model == capability.SIGMOID
    assert fit.held_out_rmse[capability.SIGMOID] < fit.held_out_rmse[capability.POWER_LAW]
    assert fit.coefficients["midpoint"] == pytest.approx(3.0, abs=0.1)
    assert float(fit.predict(3.0)) == pytest.approx(0.65, abs=0.02)


def test_capability_picks_power_law_for_wer():
    rng = np.random.default_rng(0)
    loss = np.linspace(2.0, 4.0, 10)
    wer = 0.02 * loss**3.0 * np.exp(rng.normal(0, 0.02, loss.size))
    fit = capability.fit_capability("librispeech_wer", loss, wer)
    assert fit.model == capability.POWER_LAW
    assert fit.coefficients["exponent"] == pytest.approx(3.0, abs=0.1)


def test_capability_skips_missing_values_and_needs_enough_points():
    loss = np.array([2.0, 2.5, 3.0, np.nan, 3.5])
    with pytest.raises(ValueError, match="at least"):
        capability.fit_capability("x", loss, np.array([0.9, 0.8, np.nan, 0.6, 0.5]))


def test_profile_likelihood_tells_an_identified_law_from_an_unidentified_one():
    n, d, loss = synthetic_parametric_sweep(np.random.default_rng(0))
    identified = fits.profile_exponents(n, d, loss)
    assert identified.identified and not identified.reason
    step = 0.3  # a grid step of the profile near 0.3 (geometric grid 0.03..3)
    for profile, truth in ((identified.alpha, TRUE_LAW.alpha), (identified.beta, TRUE_LAW.beta)):
        assert profile.interval.low - step <= truth <= profile.interval.high + step
        assert min(profile.deviance) == 0.0 and max(profile.deviance) > fits.PROFILE_CHI2_95
    # Losses that do not depend on N: A -> 0 fits as well at any alpha, which the profile shows flat.
    no_n = (TRUE_LAW.E + TRUE_LAW.B / d**TRUE_LAW.beta) * np.exp(np.random.default_rng(1).normal(0, 0.005, len(d)))
    unidentified = fits.profile_exponents(n, d, no_n)
    assert not unidentified.identified and "alpha" in unidentified.reason and "do not bound" in unidentified.reason


def test_sigmoid_jacobian_matches_finite_differences():
    loss = np.linspace(2.5, 4.5, 9)
    params = np.array([0.5, 0.9, -6.0, 3.4])
    step = 1e-6
    numeric = np.stack(
        [
            (capability._sigmoid(loss, *(params + step * e)) - capability._sigmoid(loss, *(params - step * e)))
            / (2 * step)
            for e in np.eye(4)
        ],
        axis=-1,
    )
    np.testing.assert_allclose(capability._sigmoid_jacobian(loss, *params), numeric, atol=1e-6)
    # where the exponent is clipped the curve is flat in slope and midpoint
    flat = capability._sigmoid_jacobian(np.array([0.0, 10.0]), 0.0, 1.0, 100.0, 5.0)
    assert np.all(flat[:, 2:] == 0)
