"""The plan: per SLO, how much traffic and time a decision should take at the traffic seen so far,
and the smallest regression the horizon can still catch. Wald's approximations (sprt.py), so these
are expectations, shown to users; decisions never depend on them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmrollout.analysis import sprt
from llmrollout.analysis.hypotheses import CountTest, MeanTest
from llmrollout.analysis.sequential.engine import BatchEvaluation, TestReport

# The regressions searched for the smallest one the horizon can catch: ratios (or rates) up to 20x.
_SEARCH = tuple(1.0 + 0.05 * k for k in range(1, 381))


@dataclass(frozen=True)
class SLOPlan:
    slo: str
    expected_requests: float | None  # canary requests to a decision if the candidate is like stable
    expected_minutes: float | None
    smallest_catchable: str | None  # e.g. "errorRate x2.3 vs stable" within the horizon
    decided: bool

    def to_status(self) -> dict[str, object]:
        def number(value: float | None) -> float | None:
            return None if value is None or not math.isfinite(value) else round(value, 1)

        return {
            "expectedRequests": number(self.expected_requests),
            "expectedMinutes": number(self.expected_minutes),
            "smallestCatchable": self.smallest_catchable,
            "decided": self.decided,
        }

    def describe(self) -> str:
        if self.decided:
            return f"{self.slo}: decided"
        if self.expected_requests is None:
            return f"{self.slo}: no estimate yet"
        text = f"{self.slo}: ~{self.expected_requests:,.0f} canary requests"
        if self.expected_minutes is not None:
            text += f", ~{self.expected_minutes:,.0f} min at current traffic"
        if self.smallest_catchable:
            text += f" (catches {self.smallest_catchable} by the horizon)"
        return text


def _rate(events: float, exposure: float) -> float | None:
    return events / exposure if exposure > 0 else None


def _count_plan(
    report: TestReport, weight: float, horizon_exposure: float | None
) -> tuple[float | None, str | None]:
    """Expected candidate exposure to a decision (assuming the candidate behaves like stable, or like
    its own estimate for one-sample tests) and the smallest catchable regression."""
    test = report.test
    assert isinstance(test, CountTest)
    p0, p1 = float(test.null[0]), float(test.alternative[0])
    ce, cx = float(report.candidate_events[0]), float(report.candidate_exposure[0])
    if test.two_sample:
        base = _rate(float(report.stable_events[0]), float(report.stable_exposure[0]))
        if base is None or base <= 0 or not 0 < weight < 1:
            return None, None
        expected = sprt.expected_ratio_exposure(p0, p1, p0, weight, base, report.rollback_at, report.clear_at)
        smallest = None
        if horizon_exposure is not None:
            for ratio in _SEARCH:
                pace = sprt.ratio_drift(p0, p1, ratio, weight, base)
                if pace > 0 and report.rollback_at / pace <= horizon_exposure:
                    smallest = f"{ratio:.2f}x stable's {test.what}"
                    break
        return expected, smallest
    own = _rate(ce, cx)
    truth = p0 if own is None else min(own, p1)
    expected = sprt.expected_exposure(p0, p1, truth, report.rollback_at, report.clear_at)
    smallest = None
    if horizon_exposure is not None:
        for factor in _SEARCH:
            rate = min(p0 * factor, 0.999)
            pace = sprt.drift(p0, p1, rate)
            if pace > 0 and report.rollback_at / pace <= horizon_exposure:
                smallest = f"{test.what} {rate:.3g}"
                break
    return expected, smallest


def plan(
    evaluation: BatchEvaluation,
    *,
    candidate_requests_per_minute: float | None,
    exposure_per_request: dict[str, float],
    weight: float,
    minutes_left: float | None,
) -> list[SLOPlan]:
    """One plan per SLO of a batch of one. `weight` is the candidate's share of traffic at the step
    where evidence mostly accumulates (the final step); `exposure_per_request` how many of a test's
    exposures a request brings (judged answers per request for quality; 1 otherwise)."""
    plans: list[SLOPlan] = []
    for decision in evaluation.slos:
        look = decision.look
        decided = int(decision.verdict[0]) != 1
        worst_requests: float | None = None
        catchable: list[str] = []
        for report in decision.tests:
            if isinstance(report.test, MeanTest) or not isinstance(report.test, CountTest):
                continue
            if int(report.code[0]) != sprt.OPEN:
                continue
            per_request = exposure_per_request.get(look.slo.split(".")[0], 1.0)
            horizon = (
                None
                if minutes_left is None or candidate_requests_per_minute is None
                else minutes_left * candidate_requests_per_minute * per_request
                + float(report.candidate_exposure[0])
            )
            exposure, smallest = _count_plan(report, weight, horizon)
            if exposure is not None and per_request > 0:
                remaining = max(exposure - float(report.candidate_exposure[0]), 0.0) / per_request
                worst_requests = remaining if worst_requests is None else max(worst_requests, remaining)
            if smallest:
                catchable.append(smallest)
        minutes = (
            None
            if worst_requests is None or not candidate_requests_per_minute
            else worst_requests / candidate_requests_per_minute
        )
        plans.append(
            SLOPlan(
                slo=look.slo,
                expected_requests=worst_requests,
                expected_minutes=minutes,
                smallest_catchable=", ".join(catchable) or None,
                decided=decided,
            )
        )
    return plans
