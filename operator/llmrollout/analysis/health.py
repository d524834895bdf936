"""Is a serving version healthy? Judged on its hard SLOs only, one window at a time.

Moving all traffic off a version is drastic, so a breach must be beyond doubt: for the count-based
SLOs (error rate, TTFT and latency p95) the lower end of a 99.9% confidence bound must be past the
SLO, not just the estimate. A breach that is likely but not certain is INCONCLUSIVE: it neither
moves traffic nor counts as recovery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llmrollout.analysis.confidence import lower_confidence_bound
from llmrollout.analysis.observations import Histogram, VariantWindow
from llmrollout.analysis.quantiles import interpolated_count_above
from llmrollout.analysis.results import ERROR_RATE, LATENCY_P95, QUALITY_MIN_SCORE, TTFT_P95, SLOResult
from llmrollout.analysis.slos import hard_slos
from llmrollout.analysis.threshold import evaluate_variant
from llmrollout.analysis.verdict import Verdict, worst
from llmrollout.api.spec import Pricing, SLOs

CONFIRMATION_MISCOVERAGE = 0.001
P95_EXCEEDANCE = 0.05


@dataclass(frozen=True)
class Health:
    variant: str
    verdict: Verdict  # FAIL: a hard SLO is breached beyond doubt; PASS: every hard SLO holds
    badness: float  # the worst value/bound over hard SLOs (inf when unknown): ranks versions that all fail
    message: str
    results: tuple[SLOResult, ...] = ()


def _share_lower_bound(above: float | None, total: float | None, miscoverage: float) -> float | None:
    if above is None or total is None or not math.isfinite(above) or not total or total <= 0:
        return None
    return lower_confidence_bound(max(0.0, above), total, miscoverage)


def _confirmed(result: SLOResult, window: VariantWindow, miscoverage: float) -> SLOResult:
    """A point-estimate breach, kept as FAIL only if the count behind it rules out chance."""
    if result.verdict != Verdict.FAIL or result.bound is None:
        return result
    histograms: dict[str, Histogram | None] = {TTFT_P95: window.ttft, LATENCY_P95: window.latency}
    if result.slo == ERROR_RATE:
        lower = _share_lower_bound(window.errors, window.requests, miscoverage)
        limit, what = result.bound, "error rate"
    elif result.slo in histograms and (hist := histograms[result.slo]) is not None:
        lower = _share_lower_bound(interpolated_count_above(hist, result.bound), hist.count, miscoverage)
        limit, what = P95_EXCEEDANCE, f"share above {result.bound:g}s"
    else:
        return result  # quality, cost and custom SLOs marked hard: the estimate is all there is
    confidence = f"{100 * (1 - miscoverage):g}%"
    if lower is not None and lower > limit:
        return replace(result, message=f"{result.message}; {what} {confidence} lower bound {lower:.3f}")
    note = "n/a" if lower is None else f"{lower:.3f}"
    return replace(
        result,
        verdict=Verdict.INCONCLUSIVE,
        message=f"{result.message}, not yet beyond doubt ({what} {confidence} lower bound {note})",
    )


def _badness(result: SLOResult) -> float:
    if result.value is None or result.bound is None:
        return math.inf
    if result.slo == QUALITY_MIN_SCORE:  # the one SLO with a lower bound: worse as the value falls
        return result.bound / result.value if result.value > 0 else math.inf
    return result.value / result.bound if result.bound > 0 else (math.inf if result.value > 0 else 0.0)


def evaluate_health(
    slos: SLOs, window: VariantWindow, pricing: Pricing | None, miscoverage: float = CONFIRMATION_MISCOVERAGE
) -> Health:
    hard = hard_slos(slos)
    results = tuple(_confirmed(r, window, miscoverage) for r in evaluate_variant(hard, window, pricing))
    if not results:
        return Health(window.variant, Verdict.PASS, 0.0, f"{window.variant}: no hard SLOs to hold")
    verdict = worst(r.verdict for r in results)
    # Ranked by what is known; a version with nothing known cannot be chosen as the least bad.
    badness = max((_badness(r) for r in results if r.value is not None), default=math.inf)
    deciding = [r.message for r in results if r.verdict == verdict]
    return Health(window.variant, verdict, badness, "; ".join(deciding), results)
