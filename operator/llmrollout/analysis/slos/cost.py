"""costPerRequest.maxUSD: token counts times the variant's prices, per request.

A confidence sequence on the mean cost per request, assuming no single request costs more than
cost_cap_multiple x maxUSD (Prometheus gives sums per window, not each request's cost).
"""

from __future__ import annotations

import numpy as np

from llmrollout.analysis.checks import (
    NO_DATA,
    compare_upper,
    cost_per_request,
    inconclusive,
)
from llmrollout.analysis.hypotheses import LookInput, MeanTest, SequentialConfig, SLOLook, nan_to_missing
from llmrollout.analysis.messages import count, format_usd
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.results import COST_PER_REQUEST, SLOResult
from llmrollout.api.spec import CostSLO, Pricing, SLOs


def evaluate_threshold(slo: CostSLO, window: VariantWindow, pricing: Pricing | None) -> SLOResult:
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


def observe(look: LookInput, slo: CostSLO, pricing: Pricing | None, config: SequentialConfig) -> SLOLook:
    c = look.candidate
    n = look.replicates
    bound = slo.max_usd
    if pricing is None:
        reason = f"no pricing for {look.candidate_name}"
        return SLOLook(
            COST_PER_REQUEST, "costPerRequest", bound, (), np.ones(n, bool), reason, np.full(n, np.nan)
        )
    usd = np.zeros(n)
    priced = [c.requests]
    if pricing.input_per_million_tokens > 0:
        usd = usd + c.input_tokens * pricing.input_per_million_tokens / 1e6
        priced.append(c.input_tokens)
    if pricing.output_per_million_tokens > 0:
        usd = usd + c.output_tokens * pricing.output_per_million_tokens / 1e6
        priced.append(c.output_tokens)
    missing = nan_to_missing(*priced)
    reason = look.missing_reason("requests", "input_tokens", "output_tokens")
    test = MeanTest(
        key=COST_PER_REQUEST,
        slo=COST_PER_REQUEST,
        what="cost per request",
        total=usd,
        count=c.requests,
        bound=bound,
        cap=config.cost_cap_multiple * bound,
        direction="max",
        # H0 is half the bound, as for every absolute bound; roll back past the midpoint.
        rollback_level=0.75 * bound,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where(c.requests > 0, usd / c.requests, np.nan)
    return SLOLook(COST_PER_REQUEST, "costPerRequest", bound, (test,), missing, reason, estimate)


class Cost:
    field = "cost_per_request"
    hard_by_default = False

    def fields(self, slos: SLOs) -> tuple[str, ...]:
        return () if slos.cost_per_request is None else ("requests", "input_tokens", "output_tokens")

    def rollback_tests(self, slos: SLOs) -> int:
        return 1 if slos.cost_per_request is not None else 0

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        slo = slos.cost_per_request
        return [] if slo is None else [evaluate_threshold(slo, window, pricing)]

    def observe(
        self, look: LookInput, slos: SLOs, pricing: Pricing | None, config: SequentialConfig
    ) -> list[SLOLook]:
        slo = slos.cost_per_request
        return [] if slo is None else [observe(look, slo, pricing, config)]
