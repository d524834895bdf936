"""ttft.p95 and latency.p95: a 95th percentile read from a histogram."""

from __future__ import annotations

import math

from llmrollout.analysis.checks import (
    NO_DATA,
    NO_REQUESTS,
    NOT_A_NUMBER,
    P95,
    compare_upper,
    histogram_problem,
    inconclusive,
)
from llmrollout.analysis.confidence import upper_confidence_bound
from llmrollout.analysis.evidence import (
    P95_EXCEEDANCE,
    PERCENTILE_EDGE_TESTS,
    STABLE_P95_MIN_REQUESTS,
    Look,
    SequentialState,
)
from llmrollout.analysis.evidence.warmup import severe_breach, warming
from llmrollout.analysis.messages import confidence_label, count, format_ratio, format_seconds
from llmrollout.analysis.observations import Histogram, VariantWindow
from llmrollout.analysis.quantiles import (
    edge_at_or_below,
    histogram_quantile,
    interpolated_count_above,
    quantile_exceeds_finite_buckets,
)
from llmrollout.analysis.ratio_test import RateRatioTest
from llmrollout.analysis.results import LATENCY_P95, TTFT_P95, SLOResult
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import PercentileSLO, Pricing, SLOs


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
    return compare_upper(slo_name, label, variant, value, bound, samples, format_seconds)


def evaluate_sequential(
    look: Look, slo_name: str, label: str, slo: PercentileSLO, attribute: str
) -> SLOResult:
    bound = slo.p95.total_seconds()
    candidate_hist: Histogram | None = getattr(look.candidate, attribute)
    stable_hist: Histogram | None = getattr(look.stable, attribute) if look.stable else None
    problem = histogram_problem(candidate_hist)
    stable_problem = histogram_problem(stable_hist) if look.stable_required else None
    value = histogram_quantile(0.95, candidate_hist) if problem is None and candidate_hist else None

    above_bound = (
        interpolated_count_above(candidate_hist, bound) if candidate_hist and problem is None else None
    )
    sums = look.updated_sums(
        f"{slo_name}@{bound:g}",
        above_bound,
        candidate_hist.count if candidate_hist and problem is None else None,
    )

    # The ratio tests count exactly (no interpolation) above bucket edges that both versions share.
    usable = candidate_hist if problem is None else None
    stable_usable = stable_hist if histogram_problem(stable_hist) is None else None
    edge_tests: list[tuple[RateRatioTest, float, str]] = []
    for prefix, edge, what in (
        (f"{slo_name}@", _shared_edge_at_or_below(usable, stable_usable, bound), "share above"),
        (
            _stable_p95_prefix(slo_name),
            _stable_p95_edge(look, slo_name, bound, stable_usable),
            f"share above {look.stable_name}'s p95 edge",
        ),
    ):
        found = _edge_test(look, prefix, edge, usable, stable_usable)
        if found is not None:
            edge_tests.append((*found, what))
    for test, edge, what in edge_tests:
        failure = look.ratio_failure(
            slo_name,
            label,
            bound,
            value,
            test,
            f"{what} {format_seconds(edge)}",
            shares=PERCENTILE_EDGE_TESTS,
        )
        if failure is not None:
            return failure
    if problem is not None:
        return look.inconclusive(slo_name, label, bound, problem, value, sums.count)
    if stable_problem is not None:
        return look.inconclusive(
            slo_name, label, bound, f"{stable_problem} on {look.stable_name}", value, sums.count
        )
    if sums.mean is None:
        return look.inconclusive(slo_name, label, bound, NO_REQUESTS)
    miscoverage = look.config.pass_miscoverage
    upper = upper_confidence_bound(sums.total, sums.count, miscoverage)
    shown_value = "n/a" if value is None else format_seconds(value)
    evidence = (
        f"share above {format_seconds(bound)} {format_ratio(sums.mean)}, {confidence_label(miscoverage)} "
        f"upper bound {format_ratio(upper)}, n={count(sums.count)}"
    )
    for test, edge, _ in edge_tests:
        evidence += f"; above {format_seconds(edge)} " + look.ratio_note(test, shares=PERCENTILE_EDGE_TESTS)
    if upper <= P95_EXCEEDANCE:
        message = f"{label} {shown_value} <= {format_seconds(bound)} on {look.candidate_name} ({evidence})"
        return look.result(slo_name, Verdict.PASS, value, bound, sums.count, message)
    if sums.mean <= P95_EXCEEDANCE:
        relation = f"within {format_seconds(bound)} ({shown_value} this window)"
        look.harmless(slo_name, label, relation, evidence)
    reason = f"{shown_value} this window, {evidence}; upper bound not yet <= {format_ratio(P95_EXCEEDANCE)}"
    return look.inconclusive(slo_name, label, bound, reason, value, sums.count)


def _kept_edge(state: SequentialState, prefix: str) -> float | None:
    key = next((key for key in state.ratio_tests if key.startswith(prefix)), None)
    return None if key is None else float(key[len(prefix) :])


def _has_edge(hist: Histogram, edge: float) -> bool:
    return any(upper == edge for upper, _ in hist.buckets)


def _shared_edge_at_or_below(
    candidate: Histogram | None, stable: Histogram | None, bound: float
) -> float | None:
    edge = edge_at_or_below(candidate, bound) if candidate else None
    return edge if edge is not None and stable and edge_at_or_below(stable, bound) == edge else None


def _stable_p95_prefix(slo_name: str) -> str:
    return f"{slo_name}.stableP95@"


def _stable_p95_edge(look: Look, slo_name: str, bound: float, stable: Histogram | None) -> float | None:
    """The edge of the test at stable's p95: the one chosen before, or else the finite bucket edge
    nearest stable's p95 in this window (the lower one on a tie) if that lies below the SLO's edge,
    whose own test covers it otherwise. Chosen once, so that the test keeps counting the same thing."""
    kept = _kept_edge(look.previous, _stable_p95_prefix(slo_name))
    if kept is not None or stable is None or stable.count < STABLE_P95_MIN_REQUESTS:
        return kept
    p95 = histogram_quantile(0.95, stable)
    slo_edge = edge_at_or_below(stable, bound)
    if p95 is None or slo_edge is None:
        return None
    edges = [upper for upper, _ in stable.buckets if 0 < upper < math.inf]
    nearest = min(edges, key=lambda edge: (abs(edge - p95), edge))
    return nearest if nearest < slo_edge else None


def _edge_test(
    look: Look, prefix: str, edge: float | None, candidate: Histogram | None, stable: Histogram | None
) -> tuple[RateRatioTest, float] | None:
    """The rate-ratio test above `edge` (or the edge kept from before), with this window added when
    both histograms have that edge; a window without it adds nothing but keeps the evidence so far."""
    if edge is None:
        edge = _kept_edge(look.previous, prefix)
        if edge is None:
            return None
    key = f"{prefix}{edge:g}"
    if candidate and stable and _has_edge(candidate, edge) and _has_edge(stable, edge):
        counts = (candidate.count_above(edge), stable.count_above(edge), candidate.count, stable.count)
        return look.updated_ratio_test(key, *counts), edge
    return look.updated_ratio_test(key, None, None, None, None), edge


def evaluate_warmup(look: Look, slo_name: str, label: str, slo: PercentileSLO, attribute: str) -> SLOResult:
    bound = slo.p95.total_seconds()
    hist: Histogram | None = getattr(look.candidate, attribute)
    problem = histogram_problem(hist)
    usable = hist if problem is None else None
    value = histogram_quantile(0.95, usable) if usable is not None else None
    sums = look.updated_sums(
        f"warmup.{slo_name}@{bound:g}",
        interpolated_count_above(usable, bound) if usable is not None else None,
        usable.count if usable is not None else None,
    )
    stable_hist: Histogram | None = getattr(look.stable, attribute) if look.stable is not None else None
    stable_usable = stable_hist if histogram_problem(stable_hist) is None else None
    # Stable's p95 edge is best chosen now, from windows that count as evidence for nothing.
    stable_edge = _stable_p95_edge(look, slo_name, bound, stable_usable)
    if stable_edge is not None:
        look.updated_ratio_test(f"{_stable_p95_prefix(slo_name)}{stable_edge:g}", None, None, None, None)
    stable_sums = look.updated_sums(
        f"warmup.stable.{slo_name}@{bound:g}",
        interpolated_count_above(stable_usable, bound) if stable_usable is not None else None,
        stable_usable.count if stable_usable is not None else None,
    )
    what = f"share above {format_seconds(bound)}"
    severe = severe_breach(look, slo_name, label, bound, value, sums, stable_sums, P95_EXCEEDANCE, what)
    shown = "n/a" if value is None else format_seconds(value)
    return severe or warming(look, slo_name, label, bound, value, problem, shown)


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

    def rollback_tests(self, slos: SLOs) -> int:
        return 1 if self._slo(slos) is not None else 0

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        slo = self._slo(slos)
        if slo is None:
            return []
        hist: Histogram | None = getattr(window, self.attribute)
        return [evaluate_threshold(self.slo_name, self.label, slo, window.variant, hist)]

    def sequential(self, look: Look, slos: SLOs, pricing: Pricing | None) -> list[SLOResult]:
        slo = self._slo(slos)
        return (
            [] if slo is None else [evaluate_sequential(look, self.slo_name, self.label, slo, self.attribute)]
        )

    def warmup(self, look: Look, slos: SLOs, pricing: Pricing | None) -> list[SLOResult]:
        slo = self._slo(slos)
        return [] if slo is None else [evaluate_warmup(look, self.slo_name, self.label, slo, self.attribute)]


TTFT = Percentile("ttft", TTFT_P95, "ttft p95", "ttft")
LATENCY = Percentile("latency", LATENCY_P95, "latency p95", "latency")
