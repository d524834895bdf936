"""errorRate: the share of failed requests."""

from __future__ import annotations

from llmrollout.analysis.checks import NO_REQUESTS, compare_upper, data_problem, inconclusive
from llmrollout.analysis.confidence import upper_confidence_bound
from llmrollout.analysis.evidence import Look
from llmrollout.analysis.evidence.warmup import severe_breach, warming
from llmrollout.analysis.messages import confidence_label, count, format_ratio
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.results import ERROR_RATE, SLOResult
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import ErrorRateSLO, Pricing, SLOs


def evaluate_threshold(slo: ErrorRateSLO, window: VariantWindow) -> SLOResult:
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


def evaluate_sequential(look: Look, slo: ErrorRateSLO) -> SLOResult:
    label = "errorRate"
    candidate, stable = look.candidate, look.stable
    problem = data_problem(candidate.requests, candidate.errors)
    stable_problem = look.stable_problem(
        stable.requests if stable else None, stable.errors if stable else None
    )
    sums = look.updated_sums(ERROR_RATE, candidate.errors, candidate.requests)
    test = look.updated_ratio_test(
        ERROR_RATE,
        candidate.errors,
        stable.errors if stable else None,
        candidate.requests,
        stable.requests if stable else None,
    )
    failure = look.ratio_failure(ERROR_RATE, label, slo.max, sums.mean, test, "error rate")
    if failure is not None:
        return failure
    if problem is not None:
        return look.inconclusive(ERROR_RATE, label, slo.max, problem, sums.mean, sums.count)
    if stable_problem is not None:
        reason = f"{stable_problem} on {look.stable_name}"
        return look.inconclusive(ERROR_RATE, label, slo.max, reason, sums.mean, sums.count)
    if sums.mean is None:
        return look.inconclusive(ERROR_RATE, label, slo.max, NO_REQUESTS)
    miscoverage = look.config.pass_miscoverage
    upper = upper_confidence_bound(sums.total, sums.count, miscoverage)
    evidence = (
        f"{confidence_label(miscoverage)} upper bound {format_ratio(upper)}, n={count(sums.count)}; "
        + look.ratio_note(test)
    )
    if upper <= slo.max:
        shown = f"{format_ratio(sums.mean)} <= {format_ratio(slo.max)}"
        message = f"{label} {shown} on {look.candidate_name} ({evidence})"
        return look.result(ERROR_RATE, Verdict.PASS, sums.mean, slo.max, sums.count, message)
    if sums.mean <= slo.max:
        look.harmless(ERROR_RATE, label, f"{format_ratio(sums.mean)} <= {format_ratio(slo.max)}", evidence)
    reason = f"{format_ratio(sums.mean)}, {evidence}; upper bound not yet <= {format_ratio(slo.max)}"
    return look.inconclusive(ERROR_RATE, label, slo.max, reason, sums.mean, sums.count)


def evaluate_warmup(look: Look, slo: ErrorRateSLO) -> SLOResult:
    candidate, stable = look.candidate, look.stable
    problem = data_problem(candidate.requests, candidate.errors)
    sums = look.updated_sums(f"warmup.{ERROR_RATE}", candidate.errors, candidate.requests)
    stable_sums = look.updated_sums(
        f"warmup.stable.{ERROR_RATE}",
        stable.errors if stable is not None else None,
        stable.requests if stable is not None else None,
    )
    value = sums.mean
    severe = severe_breach(
        look, ERROR_RATE, "errorRate", slo.max, value, sums, stable_sums, slo.max, "error rate"
    )
    shown = "n/a" if value is None else format_ratio(value)
    return severe or warming(look, ERROR_RATE, "errorRate", slo.max, value, problem, shown)


class ErrorRate:
    field = "error_rate"
    hard_by_default = True

    def rollback_tests(self, slos: SLOs) -> int:
        return 1 if slos.error_rate is not None else 0

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        return [] if slos.error_rate is None else [evaluate_threshold(slos.error_rate, window)]

    def sequential(self, look: Look, slos: SLOs, pricing: Pricing | None) -> list[SLOResult]:
        return [] if slos.error_rate is None else [evaluate_sequential(look, slos.error_rate)]

    def warmup(self, look: Look, slos: SLOs, pricing: Pricing | None) -> list[SLOResult]:
        return [] if slos.error_rate is None else [evaluate_warmup(look, slos.error_rate)]
