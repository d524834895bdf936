"""The plan: per SLO, how much traffic and time a decision should take at the traffic seen so far,
the smallest regression the horizon can still catch, and how often the horizon's rule would err: roll
back a candidate like stable, or pass one at the SLO's bound, when its test is still open then. Wald's
approximations and a normal one for the LLR at the horizon (sprt.py), so these are expectations, shown
to users; decisions never depend on them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmrollout.analysis import sprt
from llmrollout.analysis.hypotheses import CountTest, MeanTest
from llmrollout.analysis.sequential.engine import BatchEvaluation, TestReport, mean_estimate

# The regressions searched for the smallest one the horizon can catch: ratios (or rates) up to 20x.
_SEARCH = tuple(1.0 + 0.05 * k for k in range(1, 381))
# The horizons searched for the one the SLOs need: 1 minute to a week, 2% apart.
_HORIZONS = tuple(1.02**k for k in range(0, 446))
# Standard errors (one-sided 95%) by which a one-sample test's rate must be above H0's for the
# forecast to take it as the candidate's.
_CLEARLY = 1.645


@dataclass(frozen=True)
class Forecast:
    """One open test's LLR at the horizon, from the start, at the traffic seen: its mean and variance
    per minute of the final step for a candidate like stable (two-sample: the same rate; one-sample:
    the H0 level) and for one at the test's H1, the regression it must catch."""

    healthy: tuple[float, float]
    regressed: tuple[float, float]

    def false_rollback(self, minutes: float) -> float:
        """The chance that the horizon's rule rolls back a candidate like stable after `minutes`."""
        return sprt.horizon_rollback_chance(0.0, *self.healthy, minutes)

    def miss(self, minutes: float) -> float:
        """The chance that it passes a candidate at H1."""
        return 1.0 - sprt.horizon_rollback_chance(0.0, *self.regressed, minutes)


def _per_minute(moments: tuple[float, float], exposure_per_minute: float) -> tuple[float, float]:
    return moments[0] * exposure_per_minute, moments[1] * exposure_per_minute


@dataclass(frozen=True)
class SLOPlan:
    slo: str
    expected_requests: float | None  # canary requests to a decision if the candidate is like stable
    expected_minutes: float | None
    smallest_catchable: str | None  # e.g. "errorRate x2.3 vs stable" within the horizon
    decided: bool
    # Of the SLO's open tests at the horizon: the chance any rolls back a candidate like stable, and
    # the largest chance one passes a candidate at its bound (None without a forecast).
    horizon_false_rollback: float | None = None
    horizon_miss: float | None = None
    forecasts: tuple[Forecast, ...] = ()

    def to_status(self) -> dict[str, object]:
        """What is known; a field without a value is left out (status is replaced, never merged, so
        none lingers), where a null would show as `<nil>` in `kubectl describe`."""

        def rounded(value: float | None, digits: int) -> float | None:
            return None if value is None or not math.isfinite(value) else round(value, digits)

        fields: dict[str, object | None] = {
            "expectedRequests": rounded(self.expected_requests, 1),
            "expectedMinutes": rounded(self.expected_minutes, 1),
            "smallestCatchable": self.smallest_catchable,
            "decided": self.decided,
            "horizonFalseRollback": rounded(self.horizon_false_rollback, 4),
            "horizonMiss": rounded(self.horizon_miss, 4),
        }
        return {key: value for key, value in fields.items() if value is not None}

    def errs_at_horizon(self, false_rollback_rate: float, miss_rate: float) -> bool:
        """Whether the horizon's rule would err on this SLO often enough to be worth a word: rolling
        back more than a tenth of falseRollbackRate's candidates like stable, or passing more than
        missRate of those at the bound."""
        return (self.horizon_false_rollback or 0.0) > false_rollback_rate / 10 or (
            self.horizon_miss or 0.0
        ) > miss_rate

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

    def describe_horizon(self) -> str | None:
        """What the horizon's rule would do to this SLO, when it would likely decide it at all."""
        if self.horizon_false_rollback is None or self.horizon_miss is None:
            return None
        return (
            f"{self.slo}: the horizon's rule would roll back ~{self.horizon_false_rollback:.1%} of"
            f" candidates like stable and pass ~{self.horizon_miss:.1%} of those at the bound"
        )


def _rate(events: float, exposure: float) -> float | None:
    return events / exposure if exposure > 0 else None


CountPlan = tuple[float | None, str | None, tuple[tuple[float, float], tuple[float, float]] | None]


def _count_plan(report: TestReport, weight: float, horizon_exposure: float | None) -> CountPlan:
    """Expected candidate exposure to a decision (assuming the candidate behaves like stable, or like
    its own estimate for one-sample tests), the smallest catchable regression, and the LLR's moments
    per exposure for a candidate like stable and for one at H1."""
    test = report.test
    assert isinstance(test, CountTest)
    p0, p1 = float(test.null[0]), float(test.alternative[0])
    ce, cx = float(report.candidate_events[0]), float(report.candidate_exposure[0])
    if test.bucketed:
        return _bucket_plan(test, report, weight, horizon_exposure)
    if test.two_sample:
        base = _rate(float(report.stable_events[0]), float(report.stable_exposure[0]))
        if base is None or base <= 0 or not 0 < weight < 1:
            return None, None, None
        expected = sprt.expected_ratio_exposure(
            p0, p1, p0, weight, base, report.h1_rollback_at, report.clear_at
        )
        smallest = None
        if horizon_exposure is not None:
            for ratio in _SEARCH:
                pace = sprt.ratio_drift(p0, p1, ratio, weight, base)
                if pace > 0 and report.h1_rollback_at / pace <= horizon_exposure:
                    smallest = f"{ratio:.2f}x stable's {test.what}"
                    break
        moments = (
            sprt.ratio_moments(p0, p1, 1.0, weight, base),
            sprt.ratio_moments(p0, p1, p1, weight, base),
        )
        return expected, smallest, moments
    own = _rate(ce, cx)
    # The candidate's own rate where it is at or below H0's, or clearly above it; else H0's. A rate
    # between the two from a few requests (1 of 28 against H0 2.5% and H1 5%) has the LLR drift
    # about 0, and would forecast a decision hours away for a candidate that nothing marks out.
    clearly_above = own is not None and own - p0 > _CLEARLY * math.sqrt(p0 * (1 - p0) / cx)
    truth = p0 if own is None or (p0 < own and not clearly_above) else min(own, p1)
    expected = sprt.expected_exposure(p0, p1, truth, report.h1_rollback_at, report.clear_at)
    smallest = None
    if horizon_exposure is not None:
        for factor in _SEARCH:
            rate = min(p0 * factor, 0.999)
            pace = sprt.drift(p0, p1, rate)
            if pace > 0 and report.h1_rollback_at / pace <= horizon_exposure:
                smallest = f"{test.what} {rate:.3g}"
                break
    return expected, smallest, (sprt.moments(p0, p1, p0), sprt.moments(p0, p1, p1))


def _bucket_plan(
    test: CountTest, report: TestReport, weight: float, horizon_exposure: float | None
) -> CountPlan:
    """A distribution against stable's: expected candidate observations to clear if the candidate is
    like stable; whether the design point (H1) is caught by the horizon."""
    if test.bucket_nulls is None or test.bucket_ratios is None or test.bucket_shares is None:
        return None, None, None
    nulls, ratios, shares = test.bucket_nulls[0], test.bucket_ratios[0], test.bucket_shares[0]
    if not (0 < weight < 1 and np.all(np.isfinite(ratios)) and np.all(np.isfinite(shares))):
        return None, None, None
    healthy = sprt.bucket_ratio_moments(nulls, ratios, shares, np.ones_like(ratios), weight)
    regressed = sprt.bucket_ratio_moments(nulls, ratios, shares, ratios, weight)
    expected = report.clear_at / healthy[0] if healthy[0] < 0 else None
    smallest = None
    pace = regressed[0]
    if horizon_exposure is not None and pace > 0 and report.h1_rollback_at / pace <= horizon_exposure:
        smallest = f"{test.what} x{float(test.alternative[0]):.2f} stable's"
    return expected, smallest, (healthy, regressed)


def _mean_plan(report: TestReport, test: MeanTest, miss_rate: float) -> float | None:
    """Rough further observations a confidence sequence needs to clear a mean (or a drop) at its
    current estimate: about 2 v log(2/level) / margin^2 per version, v the Bernoulli variance at the
    estimate (the mixture behind confidence.py is tight for it), or the variance the test's bound on
    squares allows where it has one."""
    cap = test.cap if test.cap > 0 else 1.0
    mean = float(mean_estimate(report)[0]) / cap
    bound = test.bound / cap
    if not math.isfinite(mean):
        return None
    margin = bound - mean if test.direction == "max" else mean - bound
    if margin <= 0:
        return None
    level = miss_rate * test.miss_share / (2 if test.two_sample else 1)
    observed = max(float(report.candidate_exposure[0]), 1e-300)
    own = float(report.candidate_events[0]) / observed / cap
    variance = own * (1 - own)
    if report.square is not None:
        # The bound on squares the test reads (bernstein.py) gives a variance nearer the data's.
        variance = min(variance, max(float(report.square[0]) / observed / cap**2 - own**2, 0.0))
    if test.two_sample:
        stable_observed = max(float(report.stable_exposure[0]), 1e-300)
        stable = float(report.stable_events[0]) / stable_observed / cap
        stable_variance = stable * (1 - stable)
        if report.stable_square is not None:
            bounded = float(report.stable_square[0]) / stable_observed / cap**2 - stable**2
            stable_variance = min(stable_variance, max(bounded, 0.0))
        variance += stable_variance
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
    horizon_minutes: float | None = None,
) -> list[SLOPlan]:
    """One plan per SLO of a batch of one. `weight` is the candidate's share of traffic at the step
    where evidence mostly accumulates (the final step); `exposure_per_request` how many of a test's
    exposures a request brings (judged answers per request for quality; 1 otherwise);
    `horizon_minutes` the whole horizon, over which the forecasts run from the start."""
    plans: list[SLOPlan] = []
    for decision in evaluation.slos:
        look = decision.look
        decided = int(decision.verdict[0]) != 1
        worst_requests: float | None = None
        catchable: list[str] = []
        routes: list[float | None] = []
        forecasts: list[Forecast] = []
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
            exposure, smallest, moments = _count_plan(report, weight, horizon)
            routes.append(
                None if exposure is None else max(exposure - float(report.candidate_exposure[0]), 0.0)
            )
            if smallest:
                catchable.append(smallest)
            if moments is not None and candidate_requests_per_minute:
                pace = candidate_requests_per_minute * per_request
                forecasts.append(Forecast(_per_minute(moments[0], pace), _per_minute(moments[1], pace)))
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
                horizon_false_rollback=None
                if not forecasts or horizon_minutes is None
                else min(sum(f.false_rollback(horizon_minutes) for f in forecasts), 1.0),
                horizon_miss=None
                if not forecasts or horizon_minutes is None
                else max(f.miss(horizon_minutes) for f in forecasts),
                forecasts=tuple(forecasts),
            )
        )
    return plans


def horizon_needed(plans: list[SLOPlan], false_rollback_rate: float, miss_rate: float) -> float | None:
    """The shortest horizon, in minutes, by which the horizon's rule would roll back at most
    `false_rollback_rate` of candidates like stable (all open tests together) and pass at most
    `miss_rate` of those at any one bound; inf beyond a week, None without a forecast."""
    forecasts = [f for p in plans for f in p.forecasts]
    if not forecasts:
        return None
    for minutes in _HORIZONS:
        wrong = sum(f.false_rollback(minutes) for f in forecasts)
        if wrong <= false_rollback_rate and max(f.miss(minutes) for f in forecasts) <= miss_rate:
            return minutes
    return math.inf
