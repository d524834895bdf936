"""custom: one number per window from the user's PromQL; no anytime-valid test applies to it."""

from __future__ import annotations

from dataclasses import replace

from llmrollout.analysis.checks import compare_lower, compare_upper, data_problem, inconclusive
from llmrollout.analysis.evidence import Look
from llmrollout.analysis.messages import format_number
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.results import SLOResult, custom_slo_name
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import CustomSLO, Pricing, SLOs


def evaluate_threshold(slo: CustomSLO, window: VariantWindow) -> SLOResult:
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


def evaluate_sequential(look: Look, slo: CustomSLO) -> SLOResult:
    result = evaluate_threshold(slo, look.candidate)
    breaches = look.previous.custom_breaches.get(slo.name, 0)
    if look.fresh:
        if result.verdict is Verdict.FAIL:
            breaches += 1
        elif result.verdict is Verdict.PASS:
            breaches = 0
    look.custom_breaches[slo.name] = breaches
    limit = look.config.custom_breaches_to_fail
    if breaches >= limit:
        message = f"{result.message}; {breaches} breaching looks in a row"
        return replace(result, verdict=Verdict.FAIL, message=message)
    if result.verdict is Verdict.FAIL:
        return replace(
            result,
            verdict=Verdict.INCONCLUSIVE,
            message=f"{result.message}; breach {breaches} of {limit} before rollback",
        )
    return result


def evaluate_warmup(look: Look, slo: CustomSLO) -> SLOResult:
    """A breach during warm-up is not counted toward custom_breaches_to_fail."""
    result = evaluate_threshold(slo, look.candidate)
    if result.verdict is Verdict.FAIL:
        result = replace(
            result, verdict=Verdict.INCONCLUSIVE, message=f"{result.message}; warm-up, not counted"
        )
    return result


class Custom:
    field = "custom"
    hard_by_default = False

    def rollback_tests(self, slos: SLOs) -> int:
        # Outside the falseRollbackRate guarantee: see custom_breaches_to_fail.
        return 0

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        return [evaluate_threshold(slo, window) for slo in slos.custom]

    def sequential(self, look: Look, slos: SLOs, pricing: Pricing | None) -> list[SLOResult]:
        return [evaluate_sequential(look, slo) for slo in slos.custom]

    def warmup(self, look: Look, slos: SLOs, pricing: Pricing | None) -> list[SLOResult]:
        return [evaluate_warmup(look, slo) for slo in slos.custom]
