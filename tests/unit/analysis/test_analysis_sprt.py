import math

import numpy as np
import pytest
from scipy.stats import binom

from llmrollout.analysis import sprt
from llmrollout.analysis.sprt import FloatArray


def test_boundaries_are_walds() -> None:
    rollback, clear = sprt.boundaries(0.01, 0.05)
    assert rollback == pytest.approx(math.log(0.95 / 0.01))
    assert clear == pytest.approx(math.log(0.05 / 0.99))


@pytest.mark.parametrize(("alpha", "beta"), [(0, 0.05), (0.01, 0), (0.6, 0.5), (1.0, 0.05)])
def test_impossible_error_rates_are_refused(alpha: float, beta: float) -> None:
    with pytest.raises(ValueError, match="error rates"):
        sprt.boundaries(alpha, beta)


@pytest.mark.parametrize(
    ("events", "exposure", "p0", "p1"),
    [(0, 100, 0.01, 0.02), (3, 100, 0.01, 0.02), (40, 500, 0.025, 0.05), (7, 7, 0.2, 0.5)],
)
def test_binomial_llr_is_the_binomial_likelihood_ratio(
    events: int, exposure: int, p0: float, p1: float
) -> None:
    expected = binom.logpmf(events, exposure, p1) - binom.logpmf(events, exposure, p0)
    assert float(sprt.binomial_llr(events, exposure, p0, p1)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("c", "s", "ec", "es", "rho1"),
    [(5, 95, 50, 950, 2.0), (12, 10, 500, 500, 1.5), (0, 30, 100, 900, 3.0), (9, 1, 900, 100, 1.2)],
)
def test_ratio_llr_is_the_conditional_binomial_likelihood_ratio(
    c: int, s: int, ec: float, es: float, rho1: float
) -> None:
    def share(rho: float) -> float:
        w = ec / (ec + es)
        return w * rho / (w * rho + 1 - w)

    expected = binom.logpmf(c, c + s, share(rho1)) - binom.logpmf(c, c + s, share(1.0))
    assert float(sprt.ratio_llr(c, s, ec, es, 1.0, rho1)) == pytest.approx(expected)


def test_a_shared_baseline_cancels_in_the_ratio_test() -> None:
    """Ten times the events on both versions at the same ratio: ten times the same evidence, not more
    evidence against the candidate than its share explains."""
    quiet = float(sprt.ratio_llr(1, 19, 50, 950, 1.0, 2.0))
    outage = float(sprt.ratio_llr(10, 190, 50, 950, 1.0, 2.0))
    assert outage == pytest.approx(10 * quiet) and outage < 0


@pytest.mark.parametrize(
    "values", [(math.nan, 10.0), (1.0, math.nan), (-1.0, 10.0), (1.0, math.inf)], ids=str
)
def test_unusable_counts_add_nothing(values: tuple[float, float]) -> None:
    assert float(sprt.binomial_llr(values[0], values[1], 0.01, 0.02)) == 0.0
    assert float(sprt.ratio_llr(values[0], 3.0, values[1], 100.0, 1.0, 2.0)) == 0.0


def test_no_exposure_on_either_side_adds_nothing() -> None:
    assert float(sprt.ratio_llr(0, 3, 0, 100, 1.0, 2.0)) == 0.0
    assert float(sprt.ratio_llr(3, 0, 100, 0, 1.0, 2.0)) == 0.0


def test_decide_and_truncate() -> None:
    llr = np.array([7.0, 4.0, -3.5, 0.0, 0.1, -0.1])
    assert sprt.decide(llr, 6.0, -3.0).tolist() == [sprt.ROLLED_BACK, 0, sprt.CLEARED, 0, 0, 0]
    assert sprt.truncate(llr).tolist() == [1, 1, -1, -1, 1, -1]


def test_walds_expected_exposure_matches_simulation() -> None:
    """Under H0 the SPRT's mean sample number is close to Wald's approximation (overshoot aside)."""
    rng = np.random.default_rng(7)
    rollback, clear = sprt.boundaries(0.002, 0.05)
    replicates, p0, p1 = 4000, 0.025, 0.05
    llr = np.zeros(replicates)
    used = np.zeros(replicates)
    open_ = np.ones(replicates, bool)
    while open_.any():
        events = rng.binomial(10, p0, replicates)
        llr = np.where(open_, llr + sprt.binomial_llr(events, 10, p0, p1), llr)
        used += np.where(open_, 10, 0)
        open_ &= sprt.decide(llr, rollback, clear) == sprt.OPEN
    expected = sprt.expected_exposure(p0, p1, p0, rollback, clear)
    assert expected is not None
    assert used.mean() == pytest.approx(expected, rel=0.25)
    assert (llr >= rollback).mean() <= 0.002 * 3  # a rare event; well within the design rate


@pytest.mark.parametrize("truth", [0.01, 0.02, 0.03])
def test_one_sample_llr_moments_match_simulation(truth: float) -> None:
    rng = np.random.default_rng(11)
    exposure = 5000
    llr = sprt.binomial_llr(rng.binomial(exposure, truth, 40_000), exposure, 0.01, 0.02)
    mean, variance = sprt.moments(0.01, 0.02, truth)
    assert llr.mean() == pytest.approx(mean * exposure, rel=0.03, abs=0.05)
    assert llr.var() == pytest.approx(variance * exposure, rel=0.03)


@pytest.mark.parametrize(("truth", "weight"), [(1.0, 0.5), (1.3, 0.5), (1.0, 0.1), (1.3, 0.25)])
def test_two_sample_llr_moments_match_simulation(truth: float, weight: float) -> None:
    """Events as Poisson streams: the candidate's at `truth` x stable's rate per exposure."""
    rng = np.random.default_rng(12)
    exposure, rate = 4000.0, 0.1
    stable_exposure = exposure * (1 - weight) / weight
    candidate = rng.poisson(exposure * rate * truth, 40_000)
    stable = rng.poisson(stable_exposure * rate, 40_000)
    llr = sprt.ratio_llr(candidate, stable, exposure, stable_exposure, 1.03, 1.3)
    mean, variance = sprt.ratio_moments(1.03, 1.3, truth, weight, rate)
    assert llr.mean() == pytest.approx(mean * exposure, rel=0.03)
    assert llr.var() == pytest.approx(variance * exposure, rel=0.04)


@pytest.mark.parametrize(
    ("llr", "mean", "variance", "exposure", "chance"),
    [
        (0.0, -1.0, 2.0, 1.0, 0.23975),  # Phi(-1 / sqrt(2))
        (0.0, 1.0, 2.0, 1.0, 0.76025),
        (0.0, -1.0, 2.0, 8.0, 0.02275),  # Phi(-2): more exposure, fewer errors
        (1.0, -0.5, 2.0, 2.0, 0.5),  # what the evidence so far leans to, taken back by the rest
        (0.5, 0.0, 0.0, 3.0, 1.0),  # nothing more to come: the sign decides
        (0.0, 0.0, 0.0, 3.0, 0.0),  # a tie clears
    ],
)
def test_the_horizons_rollback_chance_is_the_normal_tail_of_the_llr(
    llr: float, mean: float, variance: float, exposure: float, chance: float
) -> None:
    assert sprt.horizon_rollback_chance(llr, mean, variance, exposure) == pytest.approx(chance, abs=1e-4)


def test_the_horizons_rollback_chance_matches_the_sign_rule_on_simulated_llrs() -> None:
    rng = np.random.default_rng(13)
    exposure, p0, p1 = 3000, 0.01, 0.02
    llr = sprt.binomial_llr(rng.binomial(exposure, p0, 100_000), exposure, p0, p1)
    simulated = float((sprt.truncate(llr) == sprt.ROLLED_BACK).mean())
    forecast = sprt.horizon_rollback_chance(0.0, *sprt.moments(p0, p1, p0), exposure)
    assert simulated == pytest.approx(forecast, abs=0.01)


@pytest.mark.parametrize(
    ("null", "alternative", "rate", "steep"),
    [
        (0.01, 0.02, True, 0.04),  # an error rate: twice as far on the log scale
        (1.0, 2.0, False, 4.0),  # a rate ratio
        (1.03, 1.3, False, 1.3**2 / 1.03),
        (0.4, 0.8, True, 0.9),  # a rate stays below 1: at most halfway from H1 to 1
        (1.0, 0.5, False, 0.25),  # a bucket whose H1 ratio is below 1 goes further down
    ],
)
def test_the_steeper_alternative_is_twice_as_far_from_h0_on_the_log_scale(
    null: float, alternative: float, rate: bool, steep: float
) -> None:
    assert float(sprt.steeper(null, alternative, 2.0, rate=rate)) == pytest.approx(steep)


@pytest.mark.parametrize(
    ("llr", "steep_llr", "mixed"),
    [
        (10.0, -50.0, 10.0 + math.log(0.75)),  # at H1: H1's share of the mixture
        (-50.0, 10.0, 10.0 + math.log(0.25)),  # far beyond it: the steeper alternative's share
        (0.0, 0.0, 0.0),  # no evidence either way
        (2.0, 3.0, math.log(0.75 * math.exp(2.0) + 0.25 * math.exp(3.0))),
    ],
)
def test_the_mixture_is_the_weighted_sum_of_the_two_likelihood_ratios(
    llr: float, steep_llr: float, mixed: float
) -> None:
    assert float(sprt.mixture_llr(llr, steep_llr, 0.75)) == pytest.approx(mixed)


def test_decide_rolls_back_on_the_mixture_and_clears_on_the_llr() -> None:
    llr = np.array([5.0, 5.0, -3.5, -3.5])
    mixed = np.array([4.0, 6.0, 5.0, -3.0])
    codes = sprt.decide(llr, 4.5, -3.0, mixed)
    assert codes.tolist() == [sprt.OPEN, sprt.ROLLED_BACK, sprt.ROLLED_BACK, sprt.CLEARED]


def _mixture_rollbacks(truth: float, replicates: int, looks: int, seed: int) -> tuple[float, float, float]:
    """One-sample errors (H0 1%, H1 2%, 20 requests a look): the share rolled back with the mixture,
    and the mean looks to roll back with it and with H1 alone (replicates that never do count as
    `looks`)."""
    rng = np.random.default_rng(seed)
    errors = rng.binomial(20, truth, size=(replicates, looks))
    llr = np.cumsum(sprt.binomial_llr(errors, 20, 0.01, 0.02), axis=1)
    steep = np.cumsum(sprt.binomial_llr(errors, 20, 0.01, sprt.steeper(0.01, 0.02, 2.0, rate=True)), axis=1)
    rollback_at, _ = sprt.boundaries(0.01, 0.05)

    def looks_to(evidence: np.ndarray) -> np.ndarray:
        crossed = evidence >= rollback_at
        return np.where(crossed.any(axis=1), crossed.argmax(axis=1) + 1, looks)

    mixed = sprt.mixture_llr(llr, steep, 0.75)
    return (
        float((mixed >= rollback_at).any(axis=1).mean()),
        float(looks_to(mixed).mean()),
        float(looks_to(llr).mean()),
    )


def test_the_mixture_keeps_the_false_rollback_rate_by_simulation() -> None:
    rolled, _, _ = _mixture_rollbacks(0.01, replicates=20_000, looks=400, seed=3)
    # Ville's bound: at most alpha / (1 - beta) = 1.05%, however long the test runs.
    assert rolled <= 0.0105


def test_the_mixture_rolls_back_a_regression_far_beyond_h1_sooner_and_one_at_h1_a_little_later() -> None:
    _, mixed_far, alone_far = _mixture_rollbacks(0.05, replicates=4000, looks=400, seed=4)
    _, mixed_at, alone_at = _mixture_rollbacks(0.02, replicates=4000, looks=400, seed=5)
    assert mixed_far < 0.85 * alone_far
    assert alone_at <= mixed_at <= 1.15 * alone_at


def _ramp(rng: np.random.Generator, ratio: float, stable_rates: tuple[float, float]) -> FloatArray:
    """A two-sample test's windows' LLR and its pooled counts' LLR (rows) at the horizon, after steps
    of 5%, 10% and 25% (5 windows each) and 45 windows at 50%: 120 exposures a window, stable's rate
    stable_rates[0] over the first steps and [1] over the last, the candidate's `ratio` times it."""
    replicates = 20_000
    windows_llr = np.zeros(replicates)
    pooled = np.zeros((4, replicates))
    for weight, windows, rate in ((0.05, 5, 0), (0.1, 5, 0), (0.25, 5, 0), (0.5, 45, 1)):
        for _ in range(windows):
            c_exposure = rng.binomial(120, weight, replicates)
            s_exposure = 120 - c_exposure
            c_events = rng.binomial(c_exposure, stable_rates[rate] * ratio)
            s_events = rng.binomial(s_exposure, stable_rates[rate])
            counts = np.stack([c_events, s_events, c_exposure, s_exposure]).astype(float)
            windows_llr += sprt.ratio_llr(*counts, 1.03, 1.3)
            pooled += counts
    return np.stack([windows_llr, sprt.ratio_llr(*pooled, 1.03, 1.3)])


def test_a_shift_of_stables_rate_between_steps_leaves_the_horizons_rule_alone() -> None:
    """The horizon's rule reads the windows' LLR, which compares the versions within each window: a
    shift of stable's failure share by a point after the first steps moves neither its false
    rollbacks nor its misses at H1 by more than a point. The pooled counts' LLR, a better rule while
    stable's share stays put, is moved by the shift several times as much (sprt.truncate says why
    the rule is not that)."""
    rng = np.random.default_rng(17)
    errors = {}
    for shares in ((0.1, 0.1), (0.1, 0.11), (0.11, 0.1)):
        healthy, regressed = _ramp(rng, 1.0, shares), _ramp(rng, 1.3, shares)
        false_rollbacks = (sprt.truncate(healthy) == sprt.ROLLED_BACK).mean(axis=1)
        misses = (sprt.truncate(regressed) == sprt.CLEARED).mean(axis=1)
        errors[shares] = np.stack([false_rollbacks, misses])  # rows: error; columns: windows, pooled
    steady = errors[(0.1, 0.1)]
    assert np.all(steady[:, 1] < steady[:, 0])  # steady: pooling errs less on both sides
    for shares in ((0.1, 0.11), (0.11, 0.1)):
        moved = np.abs(errors[shares] - steady)
        assert np.all(moved[:, 0] < 0.01), (shares, errors[shares])
        assert moved[:, 1].max() > 3 * moved[:, 0].max(), (shares, errors[shares])
