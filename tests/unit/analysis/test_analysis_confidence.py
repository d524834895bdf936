import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from llmrollout.analysis.confidence import PRIOR_A, PRIOR_B, confidence_interval, log_e_value


def log_mixture_e_value_by_quadrature(total: float, count: float, mean: float) -> float:
    """log of the Beta(1/2, 1/2) mixture of (p/mean)^S ((1-p)/(1-mean))^(N-S), integrated numerically
    (scaled by the likelihood's peak so that large counts do not overflow)."""
    failures = count - total

    def log_likelihood(p: float) -> float:
        return (total * math.log(p) if total else 0.0) + (failures * math.log1p(-p) if failures else 0.0)

    peak = log_likelihood(min(max(total / count, 1e-300), 1 - 1e-16))

    def integrand(p: float) -> float:
        return math.exp(log_likelihood(p) - peak) * float(stats.beta.pdf(p, PRIOR_A, PRIOR_B))

    value, _ = integrate.quad(integrand, 0.0, 1.0, points=[total / count], limit=400, epsabs=0, epsrel=1e-10)
    return math.log(value) + peak - log_likelihood(mean)


@pytest.mark.parametrize(
    ("total", "count", "mean"),
    [
        (3.0, 20.0, 0.1),
        (0.0, 50.0, 0.05),
        (12.5, 30.0, 0.6),
        (45.2, 50.0, 0.8),
        (7.0, 7.0, 0.5),
        (2.0, 200.0, 0.01),
    ],
)
def test_e_value_matches_numerical_integration(total: float, count: float, mean: float) -> None:
    expected = log_mixture_e_value_by_quadrature(total, count, mean)
    assert log_e_value(total, count, mean) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("total", "count"), [(3.0, 20.0), (0.0, 50.0), (45.2, 50.0), (50.0, 50.0), (400.0, 1000.0)]
)
@pytest.mark.parametrize("miscoverage", [0.05, 0.001])
def test_interval_ends_where_the_e_value_reaches_one_over_miscoverage(
    total: float, count: float, miscoverage: float
) -> None:
    lower, upper = confidence_interval(total, count, miscoverage)
    threshold = math.log(1 / miscoverage)
    estimate = total / count
    assert lower <= estimate <= upper

    def excess(mean: float) -> float:
        return log_mixture_e_value_by_quadrature(total, count, mean) - threshold

    if total > 0:
        assert lower == pytest.approx(optimize.brentq(excess, 1e-12, estimate), abs=1e-7)
    else:
        assert lower == 0.0
    if total < count:
        assert upper == pytest.approx(optimize.brentq(excess, max(estimate, 1e-12), 1 - 1e-12), abs=1e-7)
    else:
        assert upper == 1.0


def test_interval_narrows_with_data_and_widens_with_confidence() -> None:
    narrow = confidence_interval(100.0, 1000.0, 0.05)
    wide = confidence_interval(10.0, 100.0, 0.05)
    stricter = confidence_interval(100.0, 1000.0, 0.001)
    assert wide[0] < narrow[0] and narrow[1] < wide[1]
    assert stricter[0] < narrow[0] and narrow[1] < stricter[1]


def test_no_data_means_no_knowledge() -> None:
    assert confidence_interval(0.0, 0.0, 0.05) == (0.0, 1.0)


def test_inconsistent_counters_are_clipped() -> None:
    assert confidence_interval(12.0, 10.0, 0.05) == confidence_interval(10.0, 10.0, 0.05)


@pytest.mark.parametrize(("count", "mean"), [(30, 0.02), (200, 0.1), (500, 0.5)])
def test_single_look_error_is_at_most_miscoverage_by_exact_binomial_tail(count: int, mean: float) -> None:
    miscoverage = 0.05
    successes = np.arange(count + 1)
    rejected = np.array(
        [log_e_value(float(s), float(count), mean) >= math.log(1 / miscoverage) for s in successes]
    )
    exact_error = float(stats.binom.pmf(successes[rejected], count, mean).sum())
    assert exact_error <= miscoverage


def _ever_excludes_the_mean(
    rng: np.random.Generator, draw: str, mean: float, looks: int, miscoverage: float
) -> bool:
    threshold = math.log(1 / miscoverage)
    total = count = 0.0
    for _ in range(looks):
        size = int(rng.integers(5, 60))
        # Beta draws are fractional scores with the given mean: the case the convexity argument covers.
        values = rng.random(size) < mean if draw == "bernoulli" else rng.beta(mean * 4, (1 - mean) * 4, size)
        total += float(values.sum())
        count += size
        if log_e_value(total, count, mean) >= threshold:
            return True
    return False


@pytest.mark.parametrize(("draw", "mean"), [("bernoulli", 0.03), ("bernoulli", 0.5), ("beta", 0.85)])
def test_coverage_holds_over_fifty_looks(draw: str, mean: float) -> None:
    miscoverage = 0.1
    replicates = 1000
    rng = np.random.default_rng(20240611)
    misses = sum(_ever_excludes_the_mean(rng, draw, mean, 50, miscoverage) for _ in range(replicates))
    sampling_error = math.sqrt(miscoverage * (1 - miscoverage) / replicates)
    assert misses / replicates <= miscoverage + 3 * sampling_error
