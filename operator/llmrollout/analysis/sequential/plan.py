"""The plan: per SLO, how much traffic and time a decision should take at the traffic seen so far,
and the smallest regression the horizon can still catch. Wald's approximations (sprt.py), so these
are expectations, shown to users; decisions never depend on them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmrollout.analysis import sprt
from llmrollout.analysis.hypotheses import CountTest, MeanTest
from llmrollout.analysis.sequential.engine import BatchEvaluation, TestReport, mean_estimate

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
    if test.bucketed:
        return _bucket_plan(test, report, weight, horizon_exposure)
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


def _bucket_plan(
    test: CountTest, report: TestReport, weight: float, horizon_exposure: float | None
) -> tuple[float | None, str | None]:
    """A distribution against stable's: expected candidate observations to clear if the candidate is
    like stable; whether the design point (H1) is caught by the horizon."""
    if test.bucket_nulls is None or test.bucket_ratios is None or test.bucket_shares is None:
        return None, None
    nulls, ratios, shares = test.bucket_nulls[0], test.bucket_ratios[0], test.bucket_shares[0]
    if not (0 < weight < 1 and np.all(np.isfinite(ratios)) and np.all(np.isfinite(shares))):
        return None, None
    healthy = sprt.bucket_ratio_drift(nulls, ratios, shares, np.ones_like(ratios), weight)
    expected = report.clear_at / healthy if healthy < 0 else None
    smallest = None
    if horizon_exposure is not None:
        pace = sprt.bucket_ratio_drift(nulls, ratios, shares, ratios, weight)
        if pace > 0 and report.rollback_at / pace <= horizon_exposure:
            smallest = f"{test.what} x{float(test.alternative[0]):.2f} stable's"
    return expected, smallest


def _mean_plan(report: TestReport, test: MeanTest, miss_rate: float) -> float | None:
    """Rough further observations a confidence sequence needs to clear a mean (or a drop) at its
    current estimate: about 2 v log(2/level) / margin^2 per version, v the Bernoulli variance at the
    estimate (the mixture behind confidence.py is tight for it)."""
    cap = test.cap if test.cap > 0 else 1.0
    mean = float(mean_estimate(report)[0]) / cap
    bound = test.bound / cap
    if not math.isfinite(mean):
        return None
    margin = bound - mean if test.direction == "max" else mean - bound
    if margin <= 0:
        return None
    level = miss_rate * test.miss_share / (2 if test.two_sample else 1)
    own = float(report.candidate_events[0]) / max(float(report.candidate_exposure[0]), 1e-300) / cap
    variance = own * (1 - own)
    if test.two_sample:
        stable = float(report.stable_events[0]) / max(float(report.stable_exposure[0]), 1e-300) / cap
        variance += stable * (1 - stable)
    # The mixture behind the sequence costs about three times a fixed-sample interval at these levels.
    needed = 3 * 2 * max(variance, 1e-4) * math.log(2 / level) / margin**2
    return max(needed - float(report.candidate_exposure[0]), 0.0)


def plan(
    evaluation: BatchEvaluation,
    *,
    miss_rate: float = 0.05,
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
        routes: list[float | None] = []
        per_request = exposure_per_request.get(look.slo.split(".")[0], 1.0)
        for report in decision.tests:
            if int(report.code[0]) != sprt.OPEN or per_request <= 0:
                continue
            if isinstance(report.test, MeanTest):
                routes.append(_mean_plan(report, report.test, miss_rate))
                continue
            if not isinstance(report.test, CountTest):
                continue
            horizon = (
                None
                if minutes_left is None or candidate_requests_per_minute is None
                else minutes_left * candidate_requests_per_minute * per_request
                + float(report.candidate_exposure[0])
            )
            exposure, smallest = _count_plan(report, weight, horizon)
            routes.append(
                None if exposure is None else max(exposure - float(report.candidate_exposure[0]), 0.0)
            )
            if smallest:
                catchable.append(smallest)
        known = [route / per_request for route in routes if route is not None]
        if known and (not look.clear_any or len(known) == len(routes)):
            # Alternative routes: the quickest decides (and an unknown one might be quicker); required
            # tests: the slowest known one, a lower bound while others are unknown.
            worst_requests = min(known) if look.clear_any else max(known)
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
