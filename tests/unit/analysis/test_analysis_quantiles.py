import math
import random

import pytest

from llmrollout.analysis.observations import Histogram
from llmrollout.analysis.quantiles import histogram_quantile, quantile_exceeds_finite_buckets

INF = math.inf
# 50 observations in (0.1, 0.2], 50 in (0.2, 0.4], none above.
TWO_BUCKETS = Histogram(((0.1, 0.0), (0.2, 50.0), (0.4, 100.0), (INF, 100.0)))


@pytest.mark.parametrize(
    ("q", "hist", "expected"),
    [
        # rank 50 is the top of the (0.1, 0.2] bucket
        (0.5, TWO_BUCKETS, 0.2),
        # rank 25 is halfway through the 50 observations of (0.1, 0.2]
        (0.25, TWO_BUCKETS, 0.1 + 0.1 * 25 / 50),
        # rank 95 is 45 of the 50 observations into (0.2, 0.4]
        (0.95, TWO_BUCKETS, 0.2 + 0.2 * 45 / 50),
        # the lowest bucket interpolates from 0
        (0.5, Histogram(((1.0, 10.0), (INF, 10.0))), 0.5),
        # rank 9.5 is above the 8 observations <= 2: only the +Inf bucket reaches it
        (0.95, Histogram(((1.0, 5.0), (2.0, 8.0), (INF, 10.0))), 2.0),
        # a lowest bucket at or below 0 is returned as is
        (0.3, Histogram(((-1.0, 5.0), (INF, 10.0))), -1.0),
        # unsorted input is sorted first
        (0.95, Histogram(((INF, 100.0), (0.4, 100.0), (0.1, 0.0), (0.2, 50.0))), 0.2 + 0.2 * 45 / 50),
        # the dip 4 -> 3 is repaired to 4 (running maximum): rank 4.5 is 0.5 of the 2 in (2, 3]
        (0.75, Histogram(((1.0, 4.0), (2.0, 3.0), (3.0, 6.0), (INF, 6.0))), 2.0 + 0.5 / 2),
        # two series with the same edges (two pods) are summed
        (0.5, Histogram(((1.0, 2.0), (1.0, 2.0), (2.0, 4.0), (2.0, 4.0), (INF, 4.0), (INF, 4.0))), 1.0),
        (-0.1, TWO_BUCKETS, -INF),
        (1.1, TWO_BUCKETS, INF),
    ],
)
def test_matches_promql(q: float, hist: Histogram, expected: float) -> None:
    assert histogram_quantile(q, hist) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("q", "hist"),
    [
        (0.95, Histogram(((0.1, 0.0), (INF, 0.0)))),  # no observations
        (0.95, Histogram(())),  # no buckets at all
        (0.95, Histogram(((0.1, 3.0), (0.2, 5.0)))),  # no +Inf bucket
        (0.95, Histogram(((INF, 5.0),))),  # only the +Inf bucket
        (0.95, Histogram(((0.1, math.nan), (INF, 5.0)))),  # NaN count
        (math.nan, TWO_BUCKETS),
        (0.0, Histogram(((0.1, 0.0), (INF, 5.0)))),  # 0/0 inside the first bucket, NaN in PromQL
    ],
)
def test_none_where_promql_gives_nan(q: float, hist: Histogram) -> None:
    assert histogram_quantile(q, hist) is None


def test_close_to_the_sample_quantile_with_fine_buckets() -> None:
    rng = random.Random(7)
    samples = [rng.uniform(0.0, 1.0) for _ in range(20_000)]
    edges = [i / 100 for i in range(1, 101)]
    buckets = tuple((edge, float(sum(1 for s in samples if s <= edge))) for edge in edges)
    hist = Histogram((*buckets, (INF, float(len(samples)))))
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = sorted(samples)[math.ceil(q * len(samples)) - 1]
        estimate = histogram_quantile(q, hist)
        assert estimate is not None
        assert abs(estimate - exact) < 0.01


@pytest.mark.parametrize(
    ("hist", "exceeds"),
    [
        (Histogram(((1.0, 5.0), (2.0, 8.0), (INF, 10.0))), True),
        (Histogram(((1.0, 5.0), (2.0, 9.5), (INF, 10.0))), False),
        (TWO_BUCKETS, False),
        (Histogram(((1.0, 0.0), (INF, 0.0))), False),
    ],
)
def test_detects_a_quantile_in_the_overflow_bucket(hist: Histogram, exceeds: bool) -> None:
    assert quantile_exceeds_finite_buckets(0.95, hist) is exceeds


def test_count_above_is_conservative() -> None:
    # 0.3 lies inside (0.2, 0.4]: only the 50 observations <= 0.2 are known to be below it
    assert TWO_BUCKETS.count_above(0.3) == 50.0
    assert TWO_BUCKETS.count_above(0.4) == 0.0
    assert TWO_BUCKETS.count_above(0.05) == 100.0
