"""costPerRequest: token counts times the variant's prices, per request."""

from __future__ import annotations

from llmrollout.analysis.checks import (
    NO_DATA,
    NO_REQUESTS,
    compare_upper,
    cost_per_request,
    finite_nonnegative,
    inconclusive,
)
from llmrollout.analysis.confidence import lower_confidence_bound, upper_confidence_bound
from llmrollout.analysis.evidence import Look, Sums
from llmrollout.analysis.evidence.warmup import warming
from llmrollout.analysis.messages import confidence_label, count, format_usd
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.results import COST_PER_REQUEST, SLOResult
from llmrollout.analysis.verdict import Verdict
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


def evaluate_sequential(look: Look, slo: CostSLO, pricing: Pricing | None) -> SLOResult:
    label = "costPerRequest"
    candidate = look.candidate
    bound = slo.max_usd
    if pricing is None:
        look.updated_sums(COST_PER_REQUEST, None, None)
        return look.inconclusive(COST_PER_REQUEST, label, bound, f"no pricing for {look.candidate_name}")
    usd_per_request, problem = cost_per_request(candidate, pricing)
    window_total = None if usd_per_request is None else usd_per_request * (candidate.requests or 0.0)
    if problem == NO_REQUESTS:
        problem = None  # an idle window adds nothing but is not a fault
    cap = look.config.cost_cap_multiple * bound
    sums = _updated_cost_sums(look, window_total, candidate.requests)
    mean = sums.mean
    if mean is not None and cap <= 0:
        # A zero budget: any cost at all is a breach, and a certain one.
        verdict = Verdict.FAIL if sums.total > 0 else Verdict.PASS
        relation = ">" if verdict is Verdict.FAIL else "<="
        shown = f"{format_usd(mean)} {relation} {format_usd(bound)}"
        message = f"{label} {shown} on {look.candidate_name} (n={count(sums.count)})"
        return look.result(COST_PER_REQUEST, verdict, mean, bound, sums.count, message)
    if mean is not None:
        rollback_lower = lower_confidence_bound(sums.total / cap, sums.count, look.rollback_miscoverage)
        if rollback_lower * cap > bound:
            message = (
                f"{label} {format_usd(mean)} > {format_usd(bound)} on {look.candidate_name} "
                f"({confidence_label(look.rollback_miscoverage)} lower bound "
                f"{format_usd(rollback_lower * cap)}, n={count(sums.count)})"
            )
            return look.result(COST_PER_REQUEST, Verdict.FAIL, mean, bound, sums.count, message)
    if problem is not None:
        return look.inconclusive(COST_PER_REQUEST, label, bound, problem, mean, sums.count)
    if mean is None:
        return look.inconclusive(COST_PER_REQUEST, label, bound, NO_REQUESTS)
    miscoverage = look.config.pass_miscoverage
    upper = upper_confidence_bound(sums.total / cap, sums.count, miscoverage)
    evidence = f"{confidence_label(miscoverage)} upper bound {format_usd(upper * cap)}, n={count(sums.count)}"
    if upper * cap <= bound:
        message = f"{label} {format_usd(mean)} <= {format_usd(bound)} on {look.candidate_name} ({evidence})"
        return look.result(COST_PER_REQUEST, Verdict.PASS, mean, bound, sums.count, message)
    if mean <= bound:
        look.harmless(COST_PER_REQUEST, label, f"{format_usd(mean)} <= {format_usd(bound)}", evidence)
    reason = f"{format_usd(mean)}, {evidence}; upper bound not yet <= {format_usd(bound)}"
    return look.inconclusive(COST_PER_REQUEST, label, bound, reason, mean, sums.count)


def _updated_cost_sums(look: Look, window_total: float | None, requests: float | None) -> Sums:
    # Costs are in USD, not in [0, 1]: kept raw and scaled by the cap when bounded, so a changed
    # maxUSD rescales the evidence instead of invalidating it. Unlike a share, a total may exceed
    # the request count, so it is not clipped here.
    sums = look.sums.get(COST_PER_REQUEST) or look.previous.sums.get(COST_PER_REQUEST) or Sums()
    if look.fresh and finite_nonnegative(window_total, requests) and requests:
        assert window_total is not None
        sums = sums.add(window_total, requests)
    look.sums[COST_PER_REQUEST] = sums
    return sums


def evaluate_warmup(look: Look, slo: CostSLO, pricing: Pricing | None) -> SLOResult:
    label = "costPerRequest"
    if pricing is None:
        return look.inconclusive(
            COST_PER_REQUEST, label, slo.max_usd, f"no pricing for {look.candidate_name}"
        )
    usd, problem = cost_per_request(look.candidate, pricing)
    problem = None if problem == NO_REQUESTS else problem
    shown = "n/a" if usd is None else format_usd(usd)
    return warming(look, COST_PER_REQUEST, label, slo.max_usd, usd, problem, shown)


class Cost:
    field = "cost_per_request"
    hard_by_default = False

    def rollback_tests(self, slos: SLOs) -> int:
        return 1 if slos.cost_per_request is not None else 0

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        slo = slos.cost_per_request
        return [] if slo is None else [evaluate_threshold(slo, window, pricing)]

    def sequential(self, look: Look, slos: SLOs, pricing: Pricing | None) -> list[SLOResult]:
        slo = slos.cost_per_request
        return [] if slo is None else [evaluate_sequential(look, slo, pricing)]

    def warmup(self, look: Look, slos: SLOs, pricing: Pricing | None) -> list[SLOResult]:
        slo = slos.cost_per_request
        return [] if slo is None else [evaluate_warmup(look, slo, pricing)]
