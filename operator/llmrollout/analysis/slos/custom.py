"""custom: one number per window from the user's PromQL; no anytime-valid test applies to it, so it
rolls back after consecutive breaching looks, outside the falseRollbackRate guarantee."""

from __future__ import annotations

import numpy as np

from llmrollout.analysis.checks import compare_lower, compare_upper, data_problem, inconclusive
from llmrollout.analysis.hypotheses import BreachCount, LookInput, SequentialConfig, SLOLook
from llmrollout.analysis.messages import format_number
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.results import SLOResult, custom_slo_name
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


def observe(look: LookInput, slo: CustomSLO) -> SLOLook:
    n = look.replicates
    name = custom_slo_name(slo.name)
    value = look.candidate.custom.get(slo.name, np.full(n, np.nan))
    present = np.isfinite(value)
    breached = np.zeros(n, bool)
    if slo.max is not None:
        breached |= present & (value > slo.max)
    if slo.min is not None:
        breached |= present & (value < slo.min)
    bound = slo.max if slo.max is not None else slo.min
    assert bound is not None
    test = BreachCount(key=name, slo=name, breached=breached, within=present & ~breached)
    return SLOLook(name, name, bound, (test,), ~present, "series missing", value)


class Custom:
    field = "custom"
    hard_by_default = False

    def helpful_fields(self, slos: SLOs) -> tuple[str, ...]:
        return ()

    def fields(self, slos: SLOs) -> tuple[str, ...]:
        return ()

    def rollback_tests(self, slos: SLOs) -> int:
        return 0

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        return [evaluate_threshold(slo, window) for slo in slos.custom]

    def observe(
        self, look: LookInput, slos: SLOs, pricing: Pricing | None, config: SequentialConfig
    ) -> list[SLOLook]:
        return [observe(look, slo) for slo in slos.custom]
