"""Quantiles of classic Prometheus histograms, computed the way PromQL's histogram_quantile does.

Matching PromQL exactly matters: users compare the value in status with the one their Grafana shows.
"""

from __future__ import annotations

import math

from llmrollout.analysis.observations import Histogram


def _prepared_buckets(hist: Histogram) -> list[tuple[float, float]] | None:
    """Buckets sorted, merged by edge and made monotonic, as PromQL prepares them; None if unusable."""
    if not hist.buckets or any(math.isnan(upper) or math.isnan(count) for upper, count in hist.buckets):
        return None
    ordered = sorted(hist.buckets, key=lambda bucket: bucket[0])
    if not math.isinf(ordered[-1][0]) or ordered[-1][0] < 0:
        return None
    merged: list[tuple[float, float]] = []
    for upper, cumulative in ordered:
        # Series from several label sets (pods) arrive with the same edges; PromQL sums them.
        if merged and merged[-1][0] == upper:
            merged[-1] = (upper, merged[-1][1] + cumulative)
        else:
            merged.append((upper, cumulative))
    # Scrapes of different buckets at slightly different moments can make cumulative counts dip;
    # PromQL repairs that by carrying the running maximum forward.
    running_max = -math.inf
    monotonic: list[tuple[float, float]] = []
    for upper, cumulative in merged:
        running_max = max(running_max, cumulative)
        monotonic.append((upper, running_max))
    if len(monotonic) < 2:
        return None
    return monotonic


def histogram_quantile(q: float, hist: Histogram) -> float | None:
    """The q-quantile (0 <= q <= 1) as PromQL computes it; None where PromQL answers NaN.

    None when the histogram has no observations, lacks the +Inf bucket or has fewer than two
    buckets. A rank that falls in the +Inf bucket yields the highest finite edge (PromQL's
    convention: the true value is only known to be above it; see `quantile_exceeds_finite_buckets`).
    Like PromQL, q < 0 gives -inf and q > 1 gives +inf.
    """
    if math.isnan(q):
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = _prepared_buckets(hist)
    if buckets is None:
        return None
    observations = buckets[-1][1]
    if math.isnan(observations) or observations <= 0:
        return None
    rank = q * observations
    # The first finite bucket whose cumulative count reaches the rank (PromQL's sort.Search over
    # all but the +Inf bucket); len - 1 means only the +Inf bucket reaches it.
    index = next(
        (i for i, (_, cumulative) in enumerate(buckets[:-1]) if cumulative >= rank), len(buckets) - 1
    )
    if index == len(buckets) - 1:
        return buckets[-2][0]
    upper, cumulative = buckets[index]
    if index == 0 and upper <= 0:
        return upper
    lower = 0.0
    in_bucket = cumulative
    if index > 0:
        lower, below = buckets[index - 1]
        in_bucket -= below
        rank -= below
    if in_bucket <= 0:
        # Only possible at rank 0 in an empty bucket: 0/0, which PromQL answers with NaN.
        return None
    value = lower + (upper - lower) * (rank / in_bucket)
    return None if math.isnan(value) else value


def quantile_exceeds_finite_buckets(q: float, hist: Histogram) -> bool:
    """True when the q-quantile lies in the +Inf bucket, so histogram_quantile understates it.

    Then the true quantile is only known to exceed the highest finite edge; a bound at or above
    that edge can be neither confirmed nor refuted from this histogram.
    """
    buckets = _prepared_buckets(hist)
    if buckets is None or not 0 <= q <= 1:
        return False
    observations = buckets[-1][1]
    if math.isnan(observations) or observations <= 0:
        return False
    return buckets[-2][1] < q * observations


def edge_at_or_below(hist: Histogram, bound: float) -> float | None:
    """The largest finite bucket edge <= bound (the edge Histogram.count_above counts from)."""
    edges = [upper for upper, _ in hist.buckets if upper <= bound and math.isfinite(upper)]
    return max(edges) if edges else None


def interpolated_count_above(hist: Histogram, bound: float) -> float | None:
    """Observations above `bound`, spreading each bucket's count evenly over its width: the same
    assumption histogram_quantile makes, so "count above the SLO <= 5%" agrees with "p95 <= SLO".

    None when the histogram cannot be used (see histogram_quantile).
    """
    buckets = _prepared_buckets(hist)
    if buckets is None:
        return None
    total = buckets[-1][1]
    # Like histogram_quantile, the lowest bucket is taken to start at 0.
    lower, below_lower = 0.0, 0.0
    for upper, cumulative in buckets[:-1]:
        if bound >= upper:
            lower, below_lower = upper, cumulative
            continue
        width = upper - lower
        fraction = min(max((bound - lower) / width, 0.0), 1.0) if width > 0 else 0.0
        below = below_lower + (cumulative - below_lower) * fraction
        return max(total - below, 0.0)
    # Above the highest finite edge nothing can be interpolated: the +Inf bucket counts as above.
    return max(total - below_lower, 0.0)
