"""errorRate: the share of failed requests, against errorRate.max and against stable's rate."""

from __future__ import annotations

import numpy as np

from llmrollout.analysis.checks import NO_REQUESTS, compare_upper, data_problem, inconclusive
from llmrollout.analysis.hypotheses import (
    CountTest,
    LookInput,
    SequentialConfig,
    SLOLook,
    nan_to_missing,
    shared_incident,
)
from llmrollout.analysis.messages import count, format_ratio
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.results import ERROR_RATE, SLOResult
from llmrollout.api.spec import ErrorRateSLO, Pricing, SLOs

# An errorRate.max of 0 still needs a rate for H1: any error then is a breach beyond doubt soon.
SMALLEST_RATE = 1e-4
# The relative bound applies when stable's error rate is at least this share of errorRate.max: "twice
# stable's" means nothing when stable has (almost) no errors, and no ratio test could clear it then.
RELATIVE_FLOOR = 0.1
# ... which is decided once stable has served enough requests to expect this many errors at the floor.
FLOOR_EVIDENCE = 3.0


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


def observe(look: LookInput, slo: ErrorRateSLO, config: SequentialConfig) -> SLOLook:
    c, s = look.candidate, look.stable
    n = look.replicates
    bound = max(slo.max, SMALLEST_RATE)
    tests: list[CountTest] = [
        CountTest(
            key=f"{ERROR_RATE}/max@{slo.max:g}",
            slo=ERROR_RATE,
            what="error rate",
            candidate_events=c.errors,
            candidate_exposure=c.requests,
            null=np.full(n, bound * config.absolute_null_fraction),
            alternative=np.full(n, bound),
            skip=shared_incident(s.errors, s.requests, bound, look.stable_required),
        )
    ]
    missing = nan_to_missing(c.errors, c.requests)
    if slo.max_increase_vs_stable is not None:
        key = f"{ERROR_RATE}/vsStable@{slo.max_increase_vs_stable:g}"
        floor = bound * RELATIVE_FLOOR
        if np.isnan(look.param(f"{key}.applies")).any():
            errors = look.pool(f"{key}.poolErrors", s.errors, f"{key}.applies")
            requests = look.pool(f"{key}.poolRequests", s.requests, f"{key}.applies")
            known = requests * floor >= FLOOR_EVIDENCE
            with np.errstate(divide="ignore", invalid="ignore"):
                above = errors / requests >= floor
            look.choose(f"{key}.applies", np.where(known, above.astype(float), np.nan))
        applies = look.param(f"{key}.applies")
        # Kept at 100% too, where stable has no traffic: it adds nothing then, but keeps its verdict.
        tests.append(
            CountTest(
                key=key,
                slo=ERROR_RATE,
                what="error rate",
                candidate_events=c.errors,
                candidate_exposure=c.requests,
                stable_events=s.errors,
                stable_exposure=s.requests,
                null=np.full(n, config.ratio_null),
                alternative=np.full(n, 1.0 + slo.max_increase_vs_stable),
                ready=applies == 1.0,
                applicable=~(applies == 0.0),
                left_out=f"{look.stable_name}'s error rate is below {floor:.2g}, too low for a ratio",
            )
        )
    if look.stable_required:
        missing = missing | nan_to_missing(s.errors, s.requests)
    reason = look.missing_reason("requests", "errors")
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where(c.requests > 0, c.errors / c.requests, np.nan)
    return SLOLook(
        slo=ERROR_RATE,
        label="errorRate",
        bound=slo.max,
        tests=tuple(tests),
        missing=missing,
        missing_reason=reason,
        estimate=estimate,
        warmup=(c.errors, c.requests, s.errors, s.requests, slo.max),
    )


class ErrorRate:
    field = "error_rate"
    hard_by_default = True

    def helpful_fields(self, slos: SLOs) -> tuple[str, ...]:
        return ()

    def fields(self, slos: SLOs) -> tuple[str, ...]:
        return () if slos.error_rate is None else ("requests", "errors")

    def rollback_tests(self, slos: SLOs) -> int:
        slo = slos.error_rate
        return 0 if slo is None else 1 + (slo.max_increase_vs_stable is not None)

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        return [] if slos.error_rate is None else [evaluate_threshold(slos.error_rate, window)]

    def observe(
        self, look: LookInput, slos: SLOs, pricing: Pricing | None, config: SequentialConfig
    ) -> list[SLOLook]:
        return [] if slos.error_rate is None else [observe(look, slos.error_rate, config)]
