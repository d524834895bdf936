"""ttft.p95 and latency.p95: a 95th percentile read from a histogram.

Two tests per SLO:
- the absolute bound: the share of requests above the bound (interpolated within its bucket, as
  histogram_quantile does, so the verdict agrees with the p95 users see) is at most 5% (H0: 2.5%);
- the relative bound: the share above (1 + maxIncreaseVsStable) x stable's p95 is at most 5%, which
  is what "p95 at most maxIncrease worse than stable's" means, whatever the shape of the regression
  (H0: stable's own share above it, at least 2.5%). Stable's p95
  is chosen once, from its histogram pooled since the start (the warm-up's, usually), and kept in
  the state. A second watch compares the whole histogram with stable's (_shift_watch).
"""

from __future__ import annotations

import math

import numpy as np

from llmrollout.analysis.batch import HistogramBatch
from llmrollout.analysis.checks import (
    NO_DATA,
    NO_REQUESTS,
    NOT_A_NUMBER,
    P95,
    compare_upper,
    inconclusive,
)
from llmrollout.analysis.hypotheses import (
    CountTest,
    LookInput,
    SequentialConfig,
    SLOLook,
    nan_to_missing,
    share_one_se_up,
    shared_incident,
)
from llmrollout.analysis.messages import count, format_seconds
from llmrollout.analysis.observations import Histogram, VariantWindow
from llmrollout.analysis.quantiles import histogram_quantile, quantile_exceeds_finite_buckets
from llmrollout.analysis.results import LATENCY_P95, TTFT_P95, SLOResult
from llmrollout.analysis.shifts import (
    MIN_MOVED_SHARE,
    choose_rows,
    chosen_shift,
    common_buckets,
    moved_share,
    shifted_ratios,
)
from llmrollout.api.spec import PercentileSLO, Pricing, SLOs

P95_EXCEEDANCE = 1 - P95
# A percentile SLO needs a bucket edge within this factor of its bound (SequentialConfig has the same).
RESOLUTION = 2.0


def evaluate_threshold(
    slo_name: str, label: str, slo: PercentileSLO, variant: str, hist: Histogram | None
) -> SLOResult:
    bound = slo.p95.total_seconds()
    if hist is None:
        return inconclusive(slo_name, label, variant, bound, NO_DATA)
    if any(math.isnan(upper) or math.isnan(cumulative) for upper, cumulative in hist.buckets):
        return inconclusive(slo_name, label, variant, bound, NOT_A_NUMBER)
    samples = count(hist.count)
    if hist.count <= 0:
        return inconclusive(slo_name, label, variant, bound, NO_REQUESTS)
    value = histogram_quantile(P95, hist)
    if value is None:
        return inconclusive(slo_name, label, variant, bound, "histogram has no +Inf bucket", samples)
    if quantile_exceeds_finite_buckets(P95, hist):
        # PromQL reports the highest finite edge, but the true p95 lies somewhere above it.
        if bound >= value:
            reason = f"p95 above the highest bucket edge {format_seconds(value)}, cannot compare"
            return inconclusive(slo_name, label, variant, bound, reason, samples, value)
        shown = f"above {format_seconds(value)}"
        return compare_upper(slo_name, label, variant, value, bound, samples, format_seconds, shown)
    coarse = resolution_problem(HistogramBatch.from_histogram(hist), bound, RESOLUTION)
    if coarse is not None:
        # A p95 read off a bucket several times the bound is no measurement of it, breach or not.
        return inconclusive(slo_name, label, variant, bound, coarse, samples, value)
    return compare_upper(slo_name, label, variant, value, bound, samples, format_seconds)


def resolution_problem(hist: HistogramBatch, bound: float, factor: float) -> str | None:
    """Why the buckets cannot judge a p95 bound: no edge within `factor` of it on either side."""
    if any(bound / factor <= edge <= bound * factor for edge in hist.edges):
        return None
    shown = ", ".join(format_seconds(edge) for edge in hist.edges) or "none"
    return (
        f"no bucket edge between {format_seconds(bound / factor)} and {format_seconds(bound * factor)} "
        f"(edges: {shown}); add buckets around {format_seconds(bound)} to judge it"
    )


UNTESTABLE = -1.0
# The relative p95 test's H1 at least this multiple of its H0 (stable's share above the threshold):
# where stable itself has 1/1.5 of 5% or more above it (a very long tail), H1 is put beyond 5%, since
# one nearer H0 would take very many requests to tell from it.
MIN_P95_RATIO = 1.5


def observe(
    look: LookInput, slo_name: str, label: str, slo: PercentileSLO, attribute: str, config: SequentialConfig
) -> SLOLook:
    bound = slo.p95.total_seconds()
    n = look.replicates
    candidate: HistogramBatch | None = getattr(look.candidate, attribute)
    stable: HistogramBatch | None = getattr(look.stable, attribute)
    nan = np.full(n, np.nan)
    if candidate is None:
        return SLOLook(slo_name, label, bound, (), np.ones(n, bool), look.missing_reason(attribute), nan)
    problem = resolution_problem(candidate, bound, config.histogram_resolution)
    if problem is not None:
        return SLOLook(slo_name, label, bound, (), np.ones(n, bool), problem, nan)
    total = candidate.total
    above = candidate.share_above(np.full(n, bound)) * total
    stable_total = stable.total if stable is not None else nan
    stable_above = stable.share_above(np.full(n, bound)) * stable_total if stable is not None else nan
    tests: list[CountTest] = [
        CountTest(
            key=f"{slo_name}/max@{bound:g}",
            slo=slo_name,
            what=f"share above {format_seconds(bound)}",
            candidate_events=above,
            candidate_exposure=total,
            null=np.full(n, P95_EXCEEDANCE * config.absolute_null_fraction),
            alternative=np.full(n, P95_EXCEEDANCE),
            skip=shared_incident(stable_above, stable_total, P95_EXCEEDANCE, look.stable_required),
        )
    ]
    missing = nan_to_missing(total)
    if look.stable_required:
        missing = missing | (np.ones(n, bool) if stable is None else nan_to_missing(stable.total))
    reason = look.missing_reason(attribute)
    if slo.max_increase_vs_stable is not None:
        # Kept at 100% too, where stable has no traffic: it adds nothing then, but keeps its verdict.
        no_stable = HistogramBatch(candidate.edges, np.full((n, len(candidate.edges) + 1), np.nan))
        versus = _versus_stable(
            look, slo_name, slo.max_increase_vs_stable, candidate, stable or no_stable, config
        )
        tests.extend(versus)
        tests.append(_shift_watch(look, slo_name, slo.max_increase_vs_stable, candidate, stable, config))
    return SLOLook(
        slo=slo_name,
        label=label,
        bound=bound,
        tests=tuple(tests),
        missing=missing,
        missing_reason=reason,
        estimate=candidate.quantile(P95),
        warmup=(above, total, stable_above, stable_total, P95_EXCEEDANCE),
    )


def _versus_stable(
    look: LookInput,
    slo_name: str,
    max_increase: float,
    candidate: HistogramBatch,
    stable: HistogramBatch,
    config: SequentialConfig,
) -> list[CountTest]:
    """ "p95 at most maxIncrease worse than stable's" is "at most 5% of requests above (1 + maxIncrease)
    x stable's p95", whatever the shape of the regression (a shift, a longer tail). The threshold
    comes from stable's histogram pooled since the start (usually the warm-up's), chosen once.

    A one-sample test of the candidate's share above it: H0 stable's share above it (one standard
    error up, from stable's observations so far, and at least 2.5%), H1 5% (at least 1.5 x H0). A
    fixed H0 of 2.5% sat next to what a candidate like stable shows there: 2.2% for a lognormal TTFT
    of sigma 0.5, 3.4% for sigma 1, and more when stable's p95 was estimated low, so that healthy
    candidates with a long tail, or an unlucky estimate, were rolled back more often than
    falseRollbackRate allows. (A two-sample test against stable's share in the same windows learns
    only from the requests above the threshold, and cannot clear while neither version has any.)"""
    key = f"{slo_name}/vsStableP95@{max_increase:g}"
    chosen_before = np.isfinite(look.param(f"{key}.threshold"))
    if not chosen_before.all():
        pooled = look.pool(f"{key}.pool", stable.cumulative, f"{key}.threshold")
        enough = pooled[:, -1] >= config.stable_min_histogram
        p95 = HistogramBatch(stable.edges, pooled).quantile(P95)
        threshold = np.where(enough, (1.0 + max_increase) * p95, np.nan)
        # Judgeable only with a bucket edge near the threshold and the threshold inside the buckets.
        judgeable = np.array(
            [
                math.isfinite(t)
                and t <= max(stable.edges or (0.0,))
                and resolution_problem(stable, t, config.histogram_resolution) is None
                for t in threshold
            ]
        )
        look.choose(f"{key}.threshold", np.where(judgeable | ~np.isfinite(threshold), threshold, UNTESTABLE))
    threshold = look.param(f"{key}.threshold")
    ready = np.isfinite(threshold) & (threshold > 0)
    at = np.where(ready, threshold, np.nan)
    above = candidate.share_above(at) * candidate.total
    stable_above = stable.share_above(at) * stable.total
    share = _stable_share_above(look, key, at, stable, stable_above, chosen_before & ready)
    null = np.maximum(
        np.where(np.isfinite(share), share, 0.0), P95_EXCEEDANCE * config.absolute_null_fraction
    )
    shown = format_seconds(float(threshold[0])) if ready[0] else "(not chosen yet)"
    return [
        CountTest(
            key=key,
            slo=slo_name,
            what=f"share above {1 + max_increase:g} x {look.stable_name}'s p95 = {shown}",
            candidate_events=above,
            candidate_exposure=np.where(np.isfinite(above), candidate.total, np.nan),
            null=null,
            alternative=np.maximum(P95_EXCEEDANCE, MIN_P95_RATIO * null),
            ready=ready,
            applicable=~(threshold == UNTESTABLE),
            relative=True,
            left_out=f"no bucket edge near {1 + max_increase:g} x {look.stable_name}'s p95",
            skip=shared_incident(stable_above, stable.total, P95_EXCEEDANCE, look.stable_required),
        )
    ]


def _stable_share_above(
    look: LookInput,
    key: str,
    at: np.ndarray,
    stable: HistogramBatch,
    stable_above: np.ndarray,
    chosen_before: np.ndarray,
) -> np.ndarray:
    """Stable's share above the threshold, one standard error up: from the histogram the threshold
    was chosen from, and from every window after it before this one (so that H0 is fixed before this
    window's data is seen). NaN where the threshold is not chosen."""
    pool = look.params.get(f"{key}.pool")
    if pool is None or pool.shape != stable.cumulative.shape:
        # Stable's buckets changed since: its windows since the choice are what is left.
        pooled_above = pooled_total = np.zeros(len(at))
    else:
        pooled_total = pool[:, -1]
        pooled_above = HistogramBatch(stable.edges, pool).share_above(at) * pooled_total
    above_since = look.running_total(f"{key}.stableAbove", np.where(chosen_before, stable_above, 0.0))
    total_since = look.running_total(f"{key}.stableTotal", np.where(chosen_before, stable.total, 0.0))
    total = pooled_total + total_since
    upper = share_one_se_up(np.where(np.isfinite(pooled_above), pooled_above, 0.0) + above_since, total)
    return np.where(np.isfinite(at) & (total > 0), upper, np.nan)


def _shift_watch(
    look: LookInput,
    slo_name: str,
    max_increase: float,
    candidate: HistogramBatch,
    stable: HistogramBatch | None,
    config: SequentialConfig,
) -> CountTest:
    """A second watch on the relative bound, for the commonest regression: every duration longer by
    about the same factor (a slower model, a longer prompt). The whole histogram against stable's,
    bucket by bucket (as cost's tokens): H1 stable's distribution scaled by 1 + maxIncrease, H0 by a
    share of that (SequentialConfig.shift_null_share). It reads every request where the share above
    one edge reads only the few near the tail, so it catches a shift several times sooner. It only
    rolls back: a p95 cleared by a distribution that did not shift would say nothing about a longer
    tail alone, which the share above (1 + maxIncrease) x stable's p95 proves."""
    key = f"{slo_name}/shiftVsStable@{max_increase:g}"
    n = look.replicates
    nan = np.full(n, np.nan)
    never = np.zeros(n, bool)
    what = f"{slo_name.split('.', maxsplit=1)[0]} seconds per request"
    if stable is None:
        empty = np.full((n, 1), np.nan)
        return CountTest(
            key, slo_name, what, nan, nan, np.ones(n), nan, nan, nan, ready=never, clears=never,
            relative=True, candidate_buckets=empty, stable_buckets=empty, bucket_nulls=np.ones((n, 1)),
            bucket_ratios=np.ones((n, 1)), bucket_shares=empty,
        )  # fmt: skip
    c_counts, s_counts, edges = common_buckets(candidate, stable)
    scale = 1.0 + max_increase
    null_scale = 1.0 + config.shift_null_share * max_increase
    if np.isnan(look.param(f"{key}.chosen")).any():
        chosen = f"{key}.chosen"
        pooled = look.pool(f"{key}.pool", np.cumsum(s_counts, axis=1), chosen)
        enough = pooled[:, -1] >= config.stable_min_histogram
        ratios, shares = shifted_ratios(pooled, edges, np.full(n, scale))
        nulls, _ = shifted_ratios(pooled, edges, np.full(n, null_scale))
        # Buckets too coarse for the shift to move requests across an edge: the watch stands aside.
        usable = moved_share(shares, nulls, ratios) >= MIN_MOVED_SHARE
        look.choose(chosen, np.where(enough, np.where(usable, 1.0, 0.0), np.nan))
        choose_rows(look, f"{key}.ratios", np.where(enough[:, None], ratios, np.nan))
        choose_rows(look, f"{key}.nulls", np.where(enough[:, None], nulls, np.nan))
        choose_rows(look, f"{key}.shares", np.where(enough[:, None], shares, np.nan))
    chosen_value = look.param(f"{key}.chosen")
    ratios, nulls, shares, shift_set = chosen_shift(look, key, c_counts.shape)
    ready = (chosen_value == 1.0) & shift_set
    return CountTest(
        key=key,
        slo=slo_name,
        what=what,
        # Summaries only (the buckets decide): approximate total seconds over the observations.
        candidate_events=_approximate_sum(c_counts, edges),
        candidate_exposure=c_counts.sum(axis=1),
        null=np.full(n, null_scale),
        alternative=np.full(n, scale),
        stable_events=_approximate_sum(s_counts, edges),
        stable_exposure=s_counts.sum(axis=1),
        ready=ready,
        applicable=~(chosen_value == 0.0),
        left_out="buckets too coarse to show a shift",
        candidate_buckets=c_counts,
        stable_buckets=s_counts,
        bucket_nulls=nulls,
        bucket_ratios=ratios,
        bucket_shares=shares,
        relative=True,
        clears=never,
    )


def _approximate_sum(counts: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Seconds over the observations, each bucket's at its geometric middle (the first bucket's at half
    its edge, the open last one's at 1.5 x the highest edge)."""
    if not edges:
        return np.full(len(counts), np.nan)
    bounds = np.array(edges)
    middles = np.concatenate(
        [[bounds[0] / 2], np.sqrt(np.maximum(bounds[:-1], 0) * bounds[1:]), [1.5 * bounds[-1]]]
    )
    total: np.ndarray = counts @ middles
    return total


class Percentile:
    """One family per histogram: `attribute` is the VariantWindow field it reads."""

    hard_by_default = True

    def __init__(self, field: str, slo_name: str, label: str, attribute: str) -> None:
        self.field = field
        self.slo_name = slo_name
        self.label = label
        self.attribute = attribute

    def _slo(self, slos: SLOs) -> PercentileSLO | None:
        slo: PercentileSLO | None = getattr(slos, self.field)
        return slo

    def helpful_fields(self, slos: SLOs) -> tuple[str, ...]:
        return ()

    def fields(self, slos: SLOs) -> tuple[str, ...]:
        return () if self._slo(slos) is None else (self.attribute,)

    def rollback_tests(self, slos: SLOs) -> int:
        slo = self._slo(slos)
        return 0 if slo is None else 1 + 2 * (slo.max_increase_vs_stable is not None)

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        slo = self._slo(slos)
        if slo is None:
            return []
        hist: Histogram | None = getattr(window, self.attribute)
        return [evaluate_threshold(self.slo_name, self.label, slo, window.variant, hist)]

    def observe(
        self, look: LookInput, slos: SLOs, pricing: Pricing | None, config: SequentialConfig
    ) -> list[SLOLook]:
        slo = self._slo(slos)
        if slo is None:
            return []
        return [observe(look, self.slo_name, self.label, slo, self.attribute, config)]


TTFT = Percentile("ttft", TTFT_P95, "ttft p95", "ttft")
LATENCY = Percentile("latency", LATENCY_P95, "latency p95", "latency")
