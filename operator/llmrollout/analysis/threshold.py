"""The threshold method (Flagger/Argo-style): each window's value against each SLO's bound.

No evidence is pooled across windows and nothing is corrected for looking every interval; this is
the familiar behaviour for users who ask for it (`analysis.method: threshold`). Missing series,
NaN and empty windows are INCONCLUSIVE, never PASS: no data must never promote, and unlike
Flagger it is not a failure either (no traffic is not evidence of a bad candidate).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llmrollout.analysis.observations import Histogram, VariantWindow
from llmrollout.analysis.quantiles import histogram_quantile, quantile_exceeds_finite_buckets
from llmrollout.analysis.results import (
    COST_PER_REQUEST,
    ERROR_RATE,
    LATENCY_P95,
    QUALITY_MAX_DROP,
    QUALITY_MIN_SCORE,
    TTFT_P95,
    SLOResult,
    custom_slo_name,
)
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import CostSLO, CustomSLO, ErrorRateSLO, PercentileSLO, Pricing, QualitySLO, SLOs

P95 = 0.95
NO_DATA = "series missing"
NOT_A_NUMBER = "NaN"
NO_REQUESTS = "no requests"

Formatter = Callable[[float], str]


def format_seconds(seconds: float) -> str:
    return f"{seconds:.2f}s" if abs(seconds) >= 0.1 or seconds == 0 else f"{seconds * 1000:.1f}ms"


def format_ratio(ratio: float) -> str:
    return f"{ratio:.3f}" if abs(ratio) >= 0.001 or ratio == 0 else f"{ratio:.2g}"


def format_usd(usd: float) -> str:
    return f"${usd:.3g}"


def format_number(number: float) -> str:
    return f"{number:.4g}"


def count(value: float) -> int:
    """Counts from `increase()` are extrapolated and fractional; status shows whole observations."""
    return round(value) if math.isfinite(value) else 0


def data_problem(*values: float | None) -> str | None:
    """Why these inputs cannot be used, or None when they can."""
    if any(value is None for value in values):
        return NO_DATA
    if any(value is not None and math.isnan(value) for value in values):
        return NOT_A_NUMBER
    return None


def inconclusive(
    slo: str,
    label: str,
    variant: str,
    bound: float | None,
    reason: str,
    samples: int = 0,
    value: float | None = None,
) -> SLOResult:
    return SLOResult(
        slo=slo,
        variant=variant,
        value=value,
        bound=bound,
        samples=samples,
        verdict=Verdict.INCONCLUSIVE,
        message=f"{label} inconclusive on {variant}: {reason}",
    )


def compare_upper(
    slo: str,
    label: str,
    variant: str,
    value: float,
    bound: float,
    samples: int | None,
    fmt: Formatter,
    shown_value: str | None = None,
) -> SLOResult:
    """FAIL when value > bound; a value exactly at the bound is within the SLO."""
    failed = value > bound
    relation = ">" if failed else "<="
    shown = shown_value if shown_value is not None else fmt(value)
    sample_note = "" if samples is None else f" (n={samples})"
    return SLOResult(
        slo=slo,
        variant=variant,
        value=value,
        bound=bound,
        samples=samples or 0,
        verdict=Verdict.FAIL if failed else Verdict.PASS,
        message=f"{label} {shown} {relation} {fmt(bound)} on {variant}{sample_note}",
    )


def compare_lower(
    slo: str, label: str, variant: str, value: float, bound: float, samples: int | None, fmt: Formatter
) -> SLOResult:
    """FAIL when value < bound; a value exactly at the bound is within the SLO."""
    failed = value < bound
    relation = "<" if failed else ">="
    sample_note = "" if samples is None else f" (n={samples})"
    return SLOResult(
        slo=slo,
        variant=variant,
        value=value,
        bound=bound,
        samples=samples or 0,
        verdict=Verdict.FAIL if failed else Verdict.PASS,
        message=f"{label} {fmt(value)} {relation} {fmt(bound)} on {variant}{sample_note}",
    )


def mean_eval_score(window: VariantWindow) -> tuple[float | None, str | None]:
    """(mean score, None) or (None, why there is none)."""
    problem = data_problem(window.eval_score_sum, window.eval_score_count)
    if problem is not None:
        return None, problem
    assert window.eval_score_sum is not None and window.eval_score_count is not None
    if window.eval_score_count <= 0:
        return None, "no eval scores"
    return window.eval_score_sum / window.eval_score_count, None


def evaluate_quality(
    slo: QualitySLO, window: VariantWindow, baseline: VariantWindow | None
) -> list[SLOResult]:
    results: list[SLOResult] = []
    variant = window.variant
    mean, problem = mean_eval_score(window)
    samples = count(window.eval_score_count or 0.0)
    if slo.min_score is not None:
        label = "quality mean"
        if mean is None:
            results.append(inconclusive(QUALITY_MIN_SCORE, label, variant, slo.min_score, problem or NO_DATA))
        else:
            results.append(
                compare_lower(QUALITY_MIN_SCORE, label, variant, mean, slo.min_score, samples, format_ratio)
            )
    if slo.max_drop_vs_stable is not None:
        bound = slo.max_drop_vs_stable
        if baseline is None:
            results.append(
                inconclusive(QUALITY_MAX_DROP, "quality drop", variant, bound, "no stable baseline")
            )
            return results
        label = f"quality drop vs {baseline.variant}"
        baseline_mean, baseline_problem = mean_eval_score(baseline)
        if mean is None:
            results.append(inconclusive(QUALITY_MAX_DROP, label, variant, bound, problem or NO_DATA, samples))
        elif baseline_mean is None:
            reason = f"{baseline_problem or NO_DATA} on {baseline.variant}"
            results.append(inconclusive(QUALITY_MAX_DROP, label, variant, bound, reason, samples))
        else:
            drop = baseline_mean - mean
            results.append(
                compare_upper(QUALITY_MAX_DROP, label, variant, drop, bound, samples, format_ratio)
            )
    return results


def evaluate_percentile(
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


def evaluate_error_rate(slo: ErrorRateSLO, window: VariantWindow) -> SLOResult:
    label = "errorRate"
    variant = window.variant
    problem = data_problem(window.requests, window.errors)
    if problem is not None:
        return inconclusive(ERROR_RATE, label, variant, slo.max, problem)
    assert window.requests is not None and window.errors is not None
    if window.requests <= 0:
        return inconclusive(ERROR_RATE, label, variant, slo.max, NO_REQUESTS)
    rate = window.errors / window.requests
    return compare_upper(ERROR_RATE, label, variant, rate, slo.max, count(window.requests), format_ratio)


def cost_per_request(window: VariantWindow, pricing: Pricing) -> tuple[float | None, str | None]:
    """(mean USD per request, None) or (None, why there is none).

    A token series is needed only when its price is non-zero, so a variant priced by output tokens
    alone does not go inconclusive for lack of an input-token series.
    """
    priced_series = [window.requests]
    if pricing.input_per_million_tokens > 0:
        priced_series.append(window.input_tokens)
    if pricing.output_per_million_tokens > 0:
        priced_series.append(window.output_tokens)
    problem = data_problem(*priced_series)
    if problem is not None:
        return None, problem
    assert window.requests is not None
    if window.requests <= 0:
        return None, NO_REQUESTS
    usd = 0.0
    if pricing.input_per_million_tokens > 0:
        usd += (window.input_tokens or 0.0) * pricing.input_per_million_tokens
    if pricing.output_per_million_tokens > 0:
        usd += (window.output_tokens or 0.0) * pricing.output_per_million_tokens
    return usd / 1e6 / window.requests, None


def evaluate_cost(slo: CostSLO, window: VariantWindow, pricing: Pricing | None) -> SLOResult:
    label = "costPerRequest"
    variant = window.variant
    if pricing is None:
        # Assuming a price of zero would pass any budget; a cost SLO without prices is a spec gap.
        return inconclusive(COST_PER_REQUEST, label, variant, slo.max_usd, f"no pricing for {variant}")
    usd, problem = cost_per_request(window, pricing)
    if usd is None:
        return inconclusive(COST_PER_REQUEST, label, variant, slo.max_usd, problem or NO_DATA)
    samples = count(window.requests or 0.0)
    return compare_upper(COST_PER_REQUEST, label, variant, usd, slo.max_usd, samples, format_usd)


def evaluate_custom(slo: CustomSLO, window: VariantWindow) -> SLOResult:
    name = custom_slo_name(slo.name)
    variant = window.variant
    value = window.custom.get(slo.name)
    bound = slo.max if slo.max is not None else slo.min
    problem = data_problem(value)
    if problem is not None:
        return inconclusive(name, name, variant, bound, problem)
    assert value is not None
    # A custom query's value need not be a per-request figure, so no sample count is claimed.
    if slo.min is not None and value < slo.min:
        return compare_lower(name, name, variant, value, slo.min, None, format_number)
    if slo.max is not None:
        return compare_upper(name, name, variant, value, slo.max, None, format_number)
    assert slo.min is not None
    return compare_lower(name, name, variant, value, slo.min, None, format_number)


def evaluate_variant(
    slos: SLOs, window: VariantWindow, pricing: Pricing | None, baseline: VariantWindow | None = None
) -> list[SLOResult]:
    """One result per configured SLO for this variant's window, in a fixed order.

    `baseline` is the stable version's window for quality.maxDropVsStable; without it that SLO is
    inconclusive. Evaluating stable against its own window gives a drop of exactly 0.
    """
    results: list[SLOResult] = []
    if slos.quality is not None:
        results.extend(evaluate_quality(slos.quality, window, baseline))
    if slos.ttft is not None:
        results.append(evaluate_percentile(TTFT_P95, "ttft p95", slos.ttft, window.variant, window.ttft))
    if slos.latency is not None:
        results.append(
            evaluate_percentile(LATENCY_P95, "latency p95", slos.latency, window.variant, window.latency)
        )
    if slos.error_rate is not None:
        results.append(evaluate_error_rate(slos.error_rate, window))
    if slos.cost_per_request is not None:
        results.append(evaluate_cost(slos.cost_per_request, window, pricing))
    results.extend(evaluate_custom(custom, window) for custom in slos.custom)
    return results


def evaluate_threshold(
    slos: SLOs, candidate: VariantWindow, stable: VariantWindow | None, pricing_candidate: Pricing | None
) -> list[SLOResult]:
    """The candidate's results, with the stable window as the quality baseline."""
    return evaluate_variant(slos, candidate, pricing_candidate, baseline=stable)
