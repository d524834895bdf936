import math

import numpy as np
import pytest
from scipy import stats

from llmrollout.analysis.ratio_test import RateRatioTest, candidate_share_probability, log_sum_exp

# (candidate events, stable events, candidate exposure, stable exposure): shares 5%, 25%, 50%.
WINDOWS = [(2.0, 30.0, 50.0, 950.0), (9.0, 21.0, 250.0, 750.0), (17.0, 12.0, 500.0, 500.0)]


def fed(test: RateRatioTest, windows: list[tuple[float, float, float, float]]) -> RateRatioTest:
    for window in windows:
        test = test.update(*window)
    return test


def scipy_log_likelihood(ratio: float, windows: list[tuple[float, float, float, float]]) -> float:
    total = 0.0
    for candidate, stable, candidate_exposure, stable_exposure in windows:
        share = candidate_exposure / (candidate_exposure + stable_exposure)
        q = share * ratio / (share * ratio + 1 - share)
        total += float(stats.binom.logpmf(candidate, candidate + stable, q))
    return total


def test_q_is_the_candidates_share_of_events() -> None:
    # Equal rates: events split like traffic. Double rate at half the traffic: two thirds.
    assert candidate_share_probability(0.25, 1.0) == pytest.approx(0.25)
    assert candidate_share_probability(0.5, 2.0) == pytest.approx(2 / 3)


def test_log_likelihood_differences_match_scipy_binomial() -> None:
    test = fed(RateRatioTest.start(1.1), WINDOWS)
    reference = [scipy_log_likelihood(ratio, WINDOWS) for ratio in test.ratios]
    ours = np.array(test.log_likelihood) - test.log_likelihood[0]
    theirs = np.array(reference) - reference[0]
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_e_value_is_the_mixture_of_likelihood_ratios_above_the_null() -> None:
    null_ratio = 1.1
    test = fed(RateRatioTest.start(null_ratio), WINDOWS)
    alternatives = [ratio for ratio in test.ratios if ratio > null_ratio]
    null = scipy_log_likelihood(null_ratio, WINDOWS)
    ratios = [math.exp(scipy_log_likelihood(r, WINDOWS) - null) for r in alternatives]
    expected = sum(ratios) / len(ratios)
    assert math.exp(test.log_e_value()) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("total", "share"), [(20, 0.05), (60, 0.25), (200, 0.5)])
@pytest.mark.parametrize("true_ratio", [1.1, 1.0, 0.7])
def test_single_window_false_rejection_by_exact_binomial_tail(
    total: int, share: float, true_ratio: float
) -> None:
    """Under any ratio <= the null (1.1), the chance that one window already crosses 1/alpha,
    summed exactly over the binomial distribution of the candidate's events, is at most alpha."""
    alpha = 0.05
    exposure = 1000.0
    rejected = []
    for candidate_events in range(total + 1):
        test = RateRatioTest.start(1.1).update(
            float(candidate_events), float(total - candidate_events), share * exposure, (1 - share) * exposure
        )
        rejected.append(test.log_e_value() >= math.log(1 / alpha))
    q = candidate_share_probability(share, true_ratio)
    exact = float(stats.binom.pmf(np.flatnonzero(rejected), total, q).sum())
    assert exact <= alpha


def _rolls_back(rng: np.random.Generator, rate_ratio: float, looks: int, alpha: float) -> bool:
    """One simulated rollout: per look, requests split by the step's weight, errors binomial per
    request, and a baseline error rate that drifts and has an outage burst hitting both versions."""
    test = RateRatioTest.start(1.1)
    threshold = math.log(1 / alpha)
    for look in range(looks):
        share = (0.05, 0.1, 0.25, 0.5, 0.9)[min(look // 10, 4)]
        requests = int(rng.poisson(600))
        candidate_requests = int(rng.binomial(requests, share))
        stable_requests = requests - candidate_requests
        baseline = 0.01 * (1 + 0.5 * math.sin(look / 5)) * (20 if look == 17 else 1)
        candidate_errors = rng.binomial(candidate_requests, min(baseline * rate_ratio, 1.0))
        stable_errors = rng.binomial(stable_requests, baseline)
        test = test.update(
            float(candidate_errors), float(stable_errors), float(candidate_requests), float(stable_requests)
        )
        if test.log_e_value() >= threshold:
            return True
    return False


def test_healthy_candidates_over_fifty_looks_roll_back_at_most_alpha() -> None:
    alpha = 0.05
    replicates = 1500
    rng = np.random.default_rng(7)
    rollbacks = sum(_rolls_back(rng, 1.0, 50, alpha) for _ in range(replicates))
    sampling_error = math.sqrt(alpha * (1 - alpha) / replicates)
    assert rollbacks / replicates <= alpha + 3 * sampling_error


def test_a_tripled_error_rate_is_caught() -> None:
    replicates = 200
    rng = np.random.default_rng(11)
    caught = sum(_rolls_back(rng, 3.0, 50, 0.01) for _ in range(replicates))
    assert caught / replicates >= 0.95


def test_idle_or_one_sided_windows_carry_no_evidence() -> None:
    start = RateRatioTest.start(1.1)
    for window in [(0.0, 0.0, 100.0, 100.0), (5.0, 0.0, 100.0, 0.0), (0.0, 0.0, 0.0, 0.0)]:
        assert start.update(*window).log_likelihood == start.log_likelihood


def test_unusable_numbers_are_ignored() -> None:
    start = RateRatioTest.start(1.1)
    for window in [(math.nan, 1.0, 10.0, 10.0), (-1.0, 1.0, 10.0, 10.0), (1.0, 1.0, math.inf, 10.0)]:
        assert start.update(*window) == start


def test_estimate_and_interval() -> None:
    test = fed(RateRatioTest.start(1.1), [(40.0, 20.0, 1000.0, 1000.0)] * 5)
    assert test.estimate == pytest.approx(2.0)
    lower, upper = test.ratio_interval(0.05)
    assert lower < 2.0 < upper
    assert lower > 1.0
    assert RateRatioTest.start(1.1).estimate is None
    assert RateRatioTest.start(1.1).ratio_interval(0.05) == (0.0, math.inf)


def test_state_round_trips_and_continues_identically() -> None:
    test = fed(RateRatioTest.start(1.25), WINDOWS[:2])
    restored = RateRatioTest.from_status(test.to_status())
    assert restored == test
    assert fed(restored, WINDOWS[2:]) == fed(test, WINDOWS[2:])


def test_inconsistent_state_is_refused() -> None:
    status = RateRatioTest.start(1.1).to_status()
    status["logLikelihood"] = status["logLikelihood"][:-1]
    with pytest.raises(ValueError, match="inconsistent"):
        RateRatioTest.from_status(status)


def test_log_sum_exp() -> None:
    values = [-1000.0, -1001.0, -999.5]
    expected = math.log(sum(math.exp(v + 1000) for v in values)) - 1000
    assert log_sum_exp(values) == pytest.approx(expected)
    assert log_sum_exp([]) == -math.inf
