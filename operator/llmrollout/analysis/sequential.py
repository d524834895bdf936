"""The sequential method: anytime-valid tests, checked at every look without inflating errors.

Each look adds one new window of aggregates (disjoint from the previous ones) to a small state that
lives in status, so a restarted operator continues the same tests. Per configured SLO:

- errorRate: a Lindon-Malek rate-ratio test of candidate vs stable errors (ratio_test.py) that rolls
  back when the candidate is worse than stable by more than `relative_tolerance`; it passes when the
  candidate's error rate has a confidence upper bound (confidence.py) within `errorRate.max`.
- ttft.p95 / latency.p95: the same rate-ratio test on the counts above two bucket edges, sharing the
  SLO's part of falseRollbackRate: the largest edge <= the SLO (Histogram.count_above), and the edge
  nearest stable's p95, chosen once from stable's first window with enough requests (usually in the
  candidate's warm-up, whose data count for nothing else) and kept in the state. Near the SLO few
  requests of a healthy version land above the edge, so a regression that stays under the SLO takes
  many requests to show there; at stable's p95 one request in twenty does, and a shift of the whole
  distribution shows soon. The step passes on the absolute check: the upper bound of the share of
  requests above the SLO (interpolated within the bucket, as histogram_quantile does) is within 5%,
  which is what "p95 <= bound" means.
- quality.minScore: a confidence sequence on the candidate's mean eval score; rolls back when its
  upper bound falls below minScore, passes when its lower bound reaches it.
- quality.maxDropVsStable: confidence sequences on both means bound the drop; rolls back when the
  drop's lower bound exceeds maxDrop or when the rate-ratio test finds the candidate's eval
  failures above stable's; passes when the drop's upper bound is within maxDrop.
- costPerRequest: a confidence sequence on the candidate's mean cost per request, from token counts
  times prices, assuming no single request costs more than `cost_cap_multiple` x maxUSD.
- custom.<name>: one opaque number per window admits no anytime-valid test; it rolls back after
  `custom_breaches_to_fail` consecutive breaching looks, outside the falseRollbackRate guarantee.

falseRollbackRate is split evenly (Bonferroni) across the rollback tests of the configured SLOs,
so a healthy candidate is rolled back with probability at most falseRollbackRate over the whole
rollout. Passing uses `pass_miscoverage` per SLO: the chance that an SLO which is truly breached
lets a step pass. Missing data is INCONCLUSIVE (hold), never PASS, and every PASS needs minRequests
in the step. Which evidence a PASS needs depends on the step (the caller's `final_step`):

- the final step, whose passing promotes, needs the full proof: every SLO passes (its upper bound
  is within the SLO);
- an earlier step passes on "no evidence of harm": no rollback test has crossed its boundary and
  every SLO's point estimate is within the SLO (a weak safety net), so that a healthy candidate at
  low traffic is not held until strategy.maxStepDuration rolls it back. Nothing is lost: evidence
  keeps accumulating over all steps, and the rollback tests are the same at every step.

Warm-up: a new candidate's windows that start within `warmup_seconds` of its first window's start
(cold caches, JIT, autoscaling) add nothing to any test, nor to the step's minRequests count, and
hold, so a cold-start spike cannot accumulate into a false rollback. Only a severe breach rolls
back during the warm-up: errorRate, or the share of requests above a p95 SLO, over the warm-up
windows so far above `warmup_severe_multiple` (5) x both what the SLO allows and stable's share over
the same windows, on at least `warmup_severe_min_requests` (50) candidate requests. That rule uses
point estimates and lies outside the falseRollbackRate guarantee (a candidate exactly at a 2%
errorRate SLO shows >= 10% on 50 requests with probability about 5e-4). A candidate that only got a
new stable does not warm up again; neither does state written before warm-ups existed.

Evidence accumulates over the whole rollout (all steps): a regression that starts mid-rollout must
first outweigh the healthy data seen before it. A FAIL is final for the rollout (kept in the state
with the message that decided it): a test that crossed its boundary has decided, even if later data
pull its e-value back down.

The state (SequentialState.to_status(), a few KB of JSON) is meant for status.analysis; it is
discarded when the candidate or stable changes, and evidence for one SLO is dropped when the spec
changes the bucket edge, bound or tolerance it was gathered at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from llmrollout.analysis.confidence import lower_confidence_bound, upper_confidence_bound
from llmrollout.analysis.observations import Histogram, VariantWindow, Window
from llmrollout.analysis.quantiles import edge_at_or_below, histogram_quantile, interpolated_count_above
from llmrollout.analysis.ratio_test import RateRatioTest
from llmrollout.analysis.results import (
    COST_PER_REQUEST,
    ERROR_RATE,
    LATENCY_P95,
    QUALITY_MAX_DROP,
    QUALITY_MIN_SCORE,
    TTFT_P95,
    SLOResult,
)
from llmrollout.analysis.threshold import (
    NO_DATA,
    NO_REQUESTS,
    NOT_A_NUMBER,
    cost_per_request,
    count,
    data_problem,
    evaluate_custom,
    format_number,
    format_ratio,
    format_seconds,
    format_usd,
)
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import CostSLO, CustomSLO, ErrorRateSLO, PercentileSLO, Pricing, QualitySLO, SLOs

STATE_VERSION = 1
P95_EXCEEDANCE = 0.05
# Windows are [start, end] in unix seconds; providers may round them, so allow a little overlap.
WINDOW_OVERLAP_SLACK_SECONDS = 1e-3
STEP_REQUEST_KEYS = ("candidate", "stable")
# Stable's p95 is read from one window; with fewer requests its rank lies in the highest bucket.
STABLE_P95_MIN_REQUESTS = 20
# The percentile SLOs' rate-ratio tests (the SLO's edge, stable's p95 edge) share the SLO's budget.
PERCENTILE_EDGE_TESTS = 2


@dataclass(frozen=True)
class SequentialConfig:
    """Knobs that the spec does not (yet) expose; the defaults are what the operator uses."""

    # H0 of the rate-ratio tests: candidate rate <= (1 + tolerance) x stable rate. Smaller catches
    # smaller regressions sooner; larger tolerates more before a healthy-enough candidate is rolled back.
    relative_tolerance: float = 0.1
    # Per SLO: the chance that a truly breached SLO still lets a step pass.
    pass_miscoverage: float = 0.05
    # Assumed per-request cost ceiling, as a multiple of costPerRequest.maxUSD.
    cost_cap_multiple: float = 10.0
    custom_breaches_to_fail: int = 2
    # A new candidate's first windows (those starting within this many seconds of its first window's
    # start) are not counted as evidence: cold caches, JIT and autoscaling make a healthy candidate
    # look worse for a minute or two, and an anytime-valid test never forgets what it has counted.
    warmup_seconds: float = 120.0
    # ... except a severe breach: during warm-up, the candidate is rolled back when the error rate, or
    # the share of requests above a p95 SLO, over the warm-up windows so far exceeds this multiple of
    # what the SLO allows (errorRate.max; 5% above the p95 bound) on at least this many requests.
    warmup_severe_multiple: float = 5.0
    warmup_severe_min_requests: int = 50


@dataclass(frozen=True)
class Sums:
    """Running sum of per-request values and the number of requests they came from."""

    total: float = 0.0
    count: float = 0.0

    def add(self, total: float, count: float) -> Sums:
        return Sums(self.total + total, self.count + count)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count > 0 else None

    def to_status(self) -> dict[str, float]:
        return {"total": self.total, "count": self.count}

    @classmethod
    def from_status(cls, data: Mapping[str, Any]) -> Sums:
        return cls(float(data["total"]), float(data["count"]))


@dataclass(frozen=True)
class SequentialState:
    """Everything the tests remember between looks; stored in status, so it must stay small.

    Keys of `sums` and `ratio_tests` name the SLO and, where it matters, the bucket edge or bound
    they were computed at: when the spec changes those, the old evidence no longer applies and is
    dropped instead of being misread.
    """

    candidate: str
    stable: str
    last_window_end: float | None = None
    step: int | None = None
    step_requests: Mapping[str, float] = field(default_factory=dict)
    looks: int = 0
    sums: Mapping[str, Sums] = field(default_factory=dict)
    ratio_tests: Mapping[str, RateRatioTest] = field(default_factory=dict)
    custom_breaches: Mapping[str, int] = field(default_factory=dict)
    # SLO -> the message of its first rollback verdict. A test that crossed its boundary has decided;
    # later data may pull the e-value back down, but Ville's bound is about ever crossing it.
    failures: Mapping[str, str] = field(default_factory=dict)
    # The start of the candidate's first window, for its warm-up; None when there is none (the state
    # was started for a new stable only, or was written before warm-ups existed).
    started_at: float | None = None

    def to_status(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "candidate": self.candidate,
            "stable": self.stable,
            "lastWindowEnd": self.last_window_end,
            "step": self.step,
            "stepRequests": dict(self.step_requests),
            "looks": self.looks,
            "sums": {key: sums.to_status() for key, sums in self.sums.items()},
            "ratioTests": {key: test.to_status() for key, test in self.ratio_tests.items()},
            "customBreaches": dict(self.custom_breaches),
            "failures": dict(self.failures),
            "startedAt": self.started_at,
        }

    @classmethod
    def from_status(cls, data: Mapping[str, Any]) -> SequentialState:
        """Raises ValueError (or KeyError/TypeError) on state this code cannot read; see load_state."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"sequential state version {data.get('version')!r} is not {STATE_VERSION}")
        last_end = data.get("lastWindowEnd")
        step = data.get("step")
        started_at = data.get("startedAt")
        return cls(
            candidate=str(data["candidate"]),
            stable=str(data["stable"]),
            last_window_end=None if last_end is None else float(last_end),
            step=None if step is None else int(step),
            step_requests={str(k): float(v) for k, v in data.get("stepRequests", {}).items()},
            looks=int(data.get("looks", 0)),
            sums={str(k): Sums.from_status(v) for k, v in data.get("sums", {}).items()},
            ratio_tests={str(k): RateRatioTest.from_status(v) for k, v in data.get("ratioTests", {}).items()},
            custom_breaches={str(k): int(v) for k, v in data.get("customBreaches", {}).items()},
            failures={str(k): str(v) for k, v in data.get("failures", {}).items()},
            started_at=None if started_at is None else float(started_at),
        )


def load_state(data: Mapping[str, Any] | None) -> SequentialState | None:
    """State from status, or None (start afresh) when absent or unreadable: a corrupt or outdated
    state costs the evidence gathered so far, never a crash loop."""
    if not data:
        return None
    try:
        return SequentialState.from_status(data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class SequentialEvaluation:
    results: list[SLOResult]
    state: SequentialState
    verdict: Verdict
    reason: str


def rollback_test_count(slos: SLOs) -> int:
    """How many tests share falseRollbackRate; fixed by the spec, never by the data."""
    tests = 0
    if slos.error_rate is not None:
        tests += 1
    if slos.ttft is not None:
        tests += 1
    if slos.latency is not None:
        tests += 1
    if slos.quality is not None:
        if slos.quality.min_score is not None:
            tests += 1
        if slos.quality.max_drop_vs_stable is not None:
            tests += 2  # the drop in mean score and the eval failure rate ratio
    if slos.cost_per_request is not None:
        tests += 1
    return tests


def _confidence_label(miscoverage: float) -> str:
    return f"{100 * (1 - miscoverage):.4g}%"


def _finite_nonnegative(*values: float | None) -> bool:
    return all(value is not None and math.isfinite(value) and value >= 0 for value in values)


def _histogram_problem(hist: Histogram | None) -> str | None:
    if hist is None:
        return NO_DATA
    if any(math.isnan(upper) or math.isnan(cumulative) for upper, cumulative in hist.buckets):
        return NOT_A_NUMBER
    if hist.count > 0 and interpolated_count_above(hist, 0.0) is None:
        return "histogram has no +Inf bucket"
    return None


class _Look:
    """One evaluation: the previous state, this window, and the state being built for the next look."""

    def __init__(
        self,
        state: SequentialState,
        candidate: VariantWindow,
        stable: VariantWindow | None,
        fresh: bool,
        stable_required: bool,
        rollback_miscoverage: float,
        config: SequentialConfig,
    ) -> None:
        self.previous = state
        self.candidate = candidate
        self.stable = stable
        self.fresh = fresh
        self.stable_required = stable_required
        self.rollback_miscoverage = rollback_miscoverage
        self.rollback_log_threshold = math.log(1.0 / rollback_miscoverage)
        self.config = config
        self.sums: dict[str, Sums] = {}
        self.ratio_tests: dict[str, RateRatioTest] = {}
        self.custom_breaches: dict[str, int] = {}
        # SLO -> why it shows no evidence of harm (point estimate within the SLO) although not yet
        # proven within it: enough to pass a step that is not the last before promotion.
        self.no_harm: dict[str, str] = {}

    def harmless(self, slo: str, label: str, relation: str, evidence: str) -> None:
        self.no_harm[slo] = (
            f"{label} {relation} on {self.candidate_name} by point estimate, no evidence of harm "
            f"({evidence}; not yet proven)"
        )

    @property
    def candidate_name(self) -> str:
        return self.candidate.variant

    @property
    def stable_name(self) -> str:
        return self.previous.stable

    def stable_problem(self, *values: float | None) -> str | None:
        """Why stable's side of a comparison is unusable this look, if it is needed at all."""
        if self.stable is None:
            return NO_DATA if self.stable_required else None
        problem = data_problem(*values)
        return problem if self.stable_required else None

    def updated_sums(self, key: str, total: float | None, requests: float | None) -> Sums:
        sums = self.sums.get(key) or self.previous.sums.get(key) or Sums()
        if self.fresh and _finite_nonnegative(total, requests) and requests:
            assert total is not None
            sums = sums.add(min(total, requests), requests)
        self.sums[key] = sums
        return sums

    def updated_ratio_test(
        self,
        key: str,
        candidate_events: float | None,
        stable_events: float | None,
        candidate_exposure: float | None,
        stable_exposure: float | None,
    ) -> RateRatioTest:
        null_ratio = 1.0 + self.config.relative_tolerance
        test = self.ratio_tests.get(key) or self.previous.ratio_tests.get(key)
        if test is None or test.null_ratio != null_ratio:
            test = RateRatioTest.start(null_ratio)
        if self.fresh and _finite_nonnegative(
            candidate_events, stable_events, candidate_exposure, stable_exposure
        ):
            assert candidate_events is not None and stable_events is not None
            assert candidate_exposure is not None and stable_exposure is not None
            test = test.update(candidate_events, stable_events, candidate_exposure, stable_exposure)
        self.ratio_tests[key] = test
        return test

    def result(
        self,
        slo: str,
        verdict: Verdict,
        value: float | None,
        bound: float | None,
        samples: float,
        message: str,
    ) -> SLOResult:
        return SLOResult(
            slo=slo,
            variant=self.candidate_name,
            value=value,
            bound=bound,
            samples=count(samples),
            verdict=verdict,
            message=message,
        )

    def inconclusive(
        self,
        slo: str,
        label: str,
        bound: float | None,
        reason: str,
        value: float | None = None,
        samples: float = 0,
    ) -> SLOResult:
        message = f"{label} inconclusive on {self.candidate_name}: {reason}"
        return self.result(slo, Verdict.INCONCLUSIVE, value, bound, samples, message)

    def ratio_note(self, test: RateRatioTest, shares: int = 1) -> str:
        estimate = test.estimate
        shown = "n/a" if estimate is None else f"{estimate:.2f}"
        evidence = math.exp(min(test.log_e_value(), 700.0))
        return (
            f"vs {self.stable_name} ratio {shown}, e={evidence:.3g} of "
            f"{shares / self.rollback_miscoverage:.3g} to roll back"
        )

    def ratio_failure(
        self,
        slo: str,
        label: str,
        bound: float | None,
        value: float | None,
        test: RateRatioTest,
        what: str,
        shares: int = 1,
    ) -> SLOResult | None:
        """FAIL when the rate-ratio test has crossed its boundary, else None. A test that shares its
        SLO's miscoverage with `shares - 1` others needs `shares` times the evidence."""
        log_e = test.log_e_value()
        threshold = self.rollback_log_threshold + math.log(shares)
        if log_e < threshold:
            return None
        candidate_rate = (
            test.candidate_events / test.candidate_exposure if test.candidate_exposure else math.nan
        )
        stable_rate = test.stable_events / test.stable_exposure if test.stable_exposure else math.nan
        estimate = test.estimate
        message = (
            f"{label} on {self.candidate_name} worse than {self.stable_name} beyond "
            f"{self.config.relative_tolerance:.0%}: {what} {format_ratio(candidate_rate)} vs "
            f"{format_ratio(stable_rate)} (ratio {'n/a' if estimate is None else f'{estimate:.2f}'}, "
            f"e={math.exp(min(log_e, 700.0)):.3g} >= {shares / self.rollback_miscoverage:.3g}, "
            f"n={count(test.candidate_exposure)} vs {count(test.stable_exposure)})"
        )
        return self.result(slo, Verdict.FAIL, value, bound, test.candidate_exposure, message)


def _error_rate(look: _Look, slo: ErrorRateSLO) -> SLOResult:
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
        f"{_confidence_label(miscoverage)} upper bound {format_ratio(upper)}, n={count(sums.count)}; "
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


def _percentile(look: _Look, slo_name: str, label: str, slo: PercentileSLO, attribute: str) -> SLOResult:
    bound = slo.p95.total_seconds()
    candidate_hist: Histogram | None = getattr(look.candidate, attribute)
    stable_hist: Histogram | None = getattr(look.stable, attribute) if look.stable else None
    problem = _histogram_problem(candidate_hist)
    stable_problem = _histogram_problem(stable_hist) if look.stable_required else None
    value = histogram_quantile(0.95, candidate_hist) if problem is None and candidate_hist else None

    above_bound = (
        interpolated_count_above(candidate_hist, bound) if candidate_hist and problem is None else None
    )
    sums = look.updated_sums(
        f"{slo_name}@{bound:g}",
        above_bound,
        candidate_hist.count if candidate_hist and problem is None else None,
    )

    # The ratio tests count exactly (no interpolation) above bucket edges that both versions share.
    usable = candidate_hist if problem is None else None
    stable_usable = stable_hist if _histogram_problem(stable_hist) is None else None
    edge_tests: list[tuple[RateRatioTest, float, str]] = []
    for prefix, edge, what in (
        (f"{slo_name}@", _shared_edge_at_or_below(usable, stable_usable, bound), "share above"),
        (
            _stable_p95_prefix(slo_name),
            _stable_p95_edge(look, slo_name, bound, stable_usable),
            f"share above {look.stable_name}'s p95 edge",
        ),
    ):
        found = _edge_test(look, prefix, edge, usable, stable_usable)
        if found is not None:
            edge_tests.append((*found, what))
    for test, edge, what in edge_tests:
        failure = look.ratio_failure(
            slo_name,
            label,
            bound,
            value,
            test,
            f"{what} {format_seconds(edge)}",
            shares=PERCENTILE_EDGE_TESTS,
        )
        if failure is not None:
            return failure
    if problem is not None:
        return look.inconclusive(slo_name, label, bound, problem, value, sums.count)
    if stable_problem is not None:
        return look.inconclusive(
            slo_name, label, bound, f"{stable_problem} on {look.stable_name}", value, sums.count
        )
    if sums.mean is None:
        return look.inconclusive(slo_name, label, bound, NO_REQUESTS)
    miscoverage = look.config.pass_miscoverage
    upper = upper_confidence_bound(sums.total, sums.count, miscoverage)
    shown_value = "n/a" if value is None else format_seconds(value)
    evidence = (
        f"share above {format_seconds(bound)} {format_ratio(sums.mean)}, {_confidence_label(miscoverage)} "
        f"upper bound {format_ratio(upper)}, n={count(sums.count)}"
    )
    for test, edge, _ in edge_tests:
        evidence += f"; above {format_seconds(edge)} " + look.ratio_note(test, shares=PERCENTILE_EDGE_TESTS)
    if upper <= P95_EXCEEDANCE:
        message = f"{label} {shown_value} <= {format_seconds(bound)} on {look.candidate_name} ({evidence})"
        return look.result(slo_name, Verdict.PASS, value, bound, sums.count, message)
    if sums.mean <= P95_EXCEEDANCE:
        relation = f"within {format_seconds(bound)} ({shown_value} this window)"
        look.harmless(slo_name, label, relation, evidence)
    reason = f"{shown_value} this window, {evidence}; upper bound not yet <= {format_ratio(P95_EXCEEDANCE)}"
    return look.inconclusive(slo_name, label, bound, reason, value, sums.count)


def _kept_edge(state: SequentialState, prefix: str) -> float | None:
    key = next((key for key in state.ratio_tests if key.startswith(prefix)), None)
    return None if key is None else float(key[len(prefix) :])


def _has_edge(hist: Histogram, edge: float) -> bool:
    return any(upper == edge for upper, _ in hist.buckets)


def _shared_edge_at_or_below(
    candidate: Histogram | None, stable: Histogram | None, bound: float
) -> float | None:
    edge = edge_at_or_below(candidate, bound) if candidate else None
    return edge if edge is not None and stable and edge_at_or_below(stable, bound) == edge else None


def _stable_p95_prefix(slo_name: str) -> str:
    return f"{slo_name}.stableP95@"


def _stable_p95_edge(look: _Look, slo_name: str, bound: float, stable: Histogram | None) -> float | None:
    """The edge of the test at stable's p95: the one chosen before, or else the finite bucket edge
    nearest stable's p95 in this window (the lower one on a tie) if that lies below the SLO's edge,
    whose own test covers it otherwise. Chosen once, so that the test keeps counting the same thing."""
    kept = _kept_edge(look.previous, _stable_p95_prefix(slo_name))
    if kept is not None or stable is None or stable.count < STABLE_P95_MIN_REQUESTS:
        return kept
    p95 = histogram_quantile(0.95, stable)
    slo_edge = edge_at_or_below(stable, bound)
    if p95 is None or slo_edge is None:
        return None
    edges = [upper for upper, _ in stable.buckets if 0 < upper < math.inf]
    nearest = min(edges, key=lambda edge: (abs(edge - p95), edge))
    return nearest if nearest < slo_edge else None


def _edge_test(
    look: _Look, prefix: str, edge: float | None, candidate: Histogram | None, stable: Histogram | None
) -> tuple[RateRatioTest, float] | None:
    """The rate-ratio test above `edge` (or the edge kept from before), with this window added when
    both histograms have that edge; a window without it adds nothing but keeps the evidence so far."""
    if edge is None:
        edge = _kept_edge(look.previous, prefix)
        if edge is None:
            return None
    key = f"{prefix}{edge:g}"
    if candidate and stable and _has_edge(candidate, edge) and _has_edge(stable, edge):
        counts = (candidate.count_above(edge), stable.count_above(edge), candidate.count, stable.count)
        return look.updated_ratio_test(key, *counts), edge
    return look.updated_ratio_test(key, None, None, None, None), edge


def _quality(look: _Look, slo: QualitySLO) -> list[SLOResult]:
    candidate, stable = look.candidate, look.stable
    problem = data_problem(candidate.eval_score_sum, candidate.eval_score_count)
    candidate_sums = look.updated_sums(
        "quality.candidate", candidate.eval_score_sum, candidate.eval_score_count
    )
    results: list[SLOResult] = []
    if slo.min_score is not None:
        results.append(_min_score(look, slo.min_score, candidate_sums, problem))
    if slo.max_drop_vs_stable is not None:
        stable_problem = look.stable_problem(
            stable.eval_score_sum if stable else None, stable.eval_score_count if stable else None
        )
        stable_sums = look.updated_sums(
            "quality.stable",
            stable.eval_score_sum if stable else None,
            stable.eval_score_count if stable else None,
        )
        fail_test = look.updated_ratio_test(
            "quality.evalFailRate",
            candidate.eval_failed,
            stable.eval_failed if stable else None,
            _judged(candidate),
            _judged(stable) if stable else None,
        )
        results.append(
            _max_drop(
                look, slo.max_drop_vs_stable, candidate_sums, stable_sums, fail_test, problem, stable_problem
            )
        )
    return results


def _judged(window: VariantWindow) -> float | None:
    if window.eval_passed is None or window.eval_failed is None:
        return None
    return window.eval_passed + window.eval_failed


def _min_score(look: _Look, min_score: float, sums: Sums, problem: str | None) -> SLOResult:
    label = "quality mean"
    mean = sums.mean
    if mean is not None:
        rollback_upper = upper_confidence_bound(sums.total, sums.count, look.rollback_miscoverage)
        if rollback_upper < min_score:
            message = (
                f"{label} {format_ratio(mean)} < {format_ratio(min_score)} on {look.candidate_name} "
                f"({_confidence_label(look.rollback_miscoverage)} upper bound "
                f"{format_ratio(rollback_upper)}, n={count(sums.count)})"
            )
            return look.result(QUALITY_MIN_SCORE, Verdict.FAIL, mean, min_score, sums.count, message)
    if problem is not None:
        return look.inconclusive(QUALITY_MIN_SCORE, label, min_score, problem, mean, sums.count)
    if mean is None:
        return look.inconclusive(QUALITY_MIN_SCORE, label, min_score, "no eval scores")
    miscoverage = look.config.pass_miscoverage
    lower = lower_confidence_bound(sums.total, sums.count, miscoverage)
    evidence = f"{_confidence_label(miscoverage)} lower bound {format_ratio(lower)}, n={count(sums.count)}"
    if lower >= min_score:
        message = (
            f"{label} {format_ratio(mean)} >= {format_ratio(min_score)} on {look.candidate_name} ({evidence})"
        )
        return look.result(QUALITY_MIN_SCORE, Verdict.PASS, mean, min_score, sums.count, message)
    if mean >= min_score:
        relation = f"{format_ratio(mean)} >= {format_ratio(min_score)}"
        look.harmless(QUALITY_MIN_SCORE, label, relation, evidence)
    reason = f"{format_ratio(mean)}, {evidence}; lower bound not yet >= {format_ratio(min_score)}"
    return look.inconclusive(QUALITY_MIN_SCORE, label, min_score, reason, mean, sums.count)


def _drop_lower_bound(candidate: Sums, stable: Sums, miscoverage: float) -> float:
    """Lower bound on stable mean - candidate mean; each version's sequence gets half the miscoverage."""
    stable_lower = lower_confidence_bound(stable.total, stable.count, miscoverage / 2)
    return stable_lower - upper_confidence_bound(candidate.total, candidate.count, miscoverage / 2)


def _drop_upper_bound(candidate: Sums, stable: Sums, miscoverage: float) -> float:
    stable_upper = upper_confidence_bound(stable.total, stable.count, miscoverage / 2)
    return stable_upper - lower_confidence_bound(candidate.total, candidate.count, miscoverage / 2)


def _max_drop(
    look: _Look,
    max_drop: float,
    candidate: Sums,
    stable: Sums,
    fail_test: RateRatioTest,
    problem: str | None,
    stable_problem: str | None,
) -> SLOResult:
    label = f"quality drop vs {look.stable_name}"
    drop = None if candidate.mean is None or stable.mean is None else stable.mean - candidate.mean
    if drop is not None:
        rollback_lower = _drop_lower_bound(candidate, stable, look.rollback_miscoverage)
        if rollback_lower > max_drop:
            message = (
                f"{label} {format_ratio(drop)} > {format_ratio(max_drop)} on {look.candidate_name} "
                f"({_confidence_label(look.rollback_miscoverage)} lower bound "
                f"{format_ratio(rollback_lower)}, n={count(candidate.count)} vs {count(stable.count)})"
            )
            return look.result(QUALITY_MAX_DROP, Verdict.FAIL, drop, max_drop, candidate.count, message)
    failure = look.ratio_failure(QUALITY_MAX_DROP, "eval failures", max_drop, drop, fail_test, "failed share")
    if failure is not None:
        return failure
    if problem is not None:
        return look.inconclusive(QUALITY_MAX_DROP, label, max_drop, problem, drop, candidate.count)
    if stable_problem is not None:
        reason = f"{stable_problem} on {look.stable_name}"
        return look.inconclusive(QUALITY_MAX_DROP, label, max_drop, reason, drop, candidate.count)
    if drop is None:
        missing = look.candidate_name if candidate.mean is None else look.stable_name
        return look.inconclusive(QUALITY_MAX_DROP, label, max_drop, f"no eval scores on {missing}")
    miscoverage = look.config.pass_miscoverage
    upper = _drop_upper_bound(candidate, stable, miscoverage)
    evidence = (
        f"{_confidence_label(miscoverage)} upper bound {format_ratio(upper)}, "
        f"n={count(candidate.count)} vs {count(stable.count)}"
    )
    if fail_test.candidate_exposure > 0:
        evidence += "; eval failures " + look.ratio_note(fail_test)
    if upper <= max_drop:
        message = (
            f"{label} {format_ratio(drop)} <= {format_ratio(max_drop)} on {look.candidate_name} ({evidence})"
        )
        return look.result(QUALITY_MAX_DROP, Verdict.PASS, drop, max_drop, candidate.count, message)
    if drop <= max_drop:
        look.harmless(QUALITY_MAX_DROP, label, f"{format_ratio(drop)} <= {format_ratio(max_drop)}", evidence)
    reason = f"{format_ratio(drop)}, {evidence}; upper bound not yet <= {format_ratio(max_drop)}"
    return look.inconclusive(QUALITY_MAX_DROP, label, max_drop, reason, drop, candidate.count)


def _cost(look: _Look, slo: CostSLO, pricing: Pricing | None) -> SLOResult:
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
                f"({_confidence_label(look.rollback_miscoverage)} lower bound "
                f"{format_usd(rollback_lower * cap)}, n={count(sums.count)})"
            )
            return look.result(COST_PER_REQUEST, Verdict.FAIL, mean, bound, sums.count, message)
    if problem is not None:
        return look.inconclusive(COST_PER_REQUEST, label, bound, problem, mean, sums.count)
    if mean is None:
        return look.inconclusive(COST_PER_REQUEST, label, bound, NO_REQUESTS)
    miscoverage = look.config.pass_miscoverage
    upper = upper_confidence_bound(sums.total / cap, sums.count, miscoverage)
    evidence = (
        f"{_confidence_label(miscoverage)} upper bound {format_usd(upper * cap)}, n={count(sums.count)}"
    )
    if upper * cap <= bound:
        message = f"{label} {format_usd(mean)} <= {format_usd(bound)} on {look.candidate_name} ({evidence})"
        return look.result(COST_PER_REQUEST, Verdict.PASS, mean, bound, sums.count, message)
    if mean <= bound:
        look.harmless(COST_PER_REQUEST, label, f"{format_usd(mean)} <= {format_usd(bound)}", evidence)
    reason = f"{format_usd(mean)}, {evidence}; upper bound not yet <= {format_usd(bound)}"
    return look.inconclusive(COST_PER_REQUEST, label, bound, reason, mean, sums.count)


def _updated_cost_sums(look: _Look, window_total: float | None, requests: float | None) -> Sums:
    # Costs are in USD, not in [0, 1]: kept raw and scaled by the cap when bounded, so a changed
    # maxUSD rescales the evidence instead of invalidating it. Unlike a share, a total may exceed
    # the request count, so it is not clipped here.
    sums = look.sums.get(COST_PER_REQUEST) or look.previous.sums.get(COST_PER_REQUEST) or Sums()
    if look.fresh and _finite_nonnegative(window_total, requests) and requests:
        assert window_total is not None
        sums = sums.add(window_total, requests)
    look.sums[COST_PER_REQUEST] = sums
    return sums


def _custom(look: _Look, slo: CustomSLO) -> SLOResult:
    result = evaluate_custom(slo, look.candidate)
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


def _window_share(total: float | None, requests: float | None) -> float | None:
    if not _finite_nonnegative(total, requests) or not requests:
        return None
    assert total is not None and requests is not None
    return min(total, requests) / requests


def _severe_breach(
    look: _Look,
    slo: str,
    label: str,
    bound: float,
    value: float | None,
    sums: Sums,
    stable_sums: Sums,
    allowed: float,
    what: str,
) -> SLOResult | None:
    """FAIL when a warm-up's share (errors, or requests above a p95 bound) is a severe breach: more
    than warmup_severe_multiple x both what the SLO allows and stable's share over the same windows
    (an outage that hits both versions is not the candidate's fault)."""
    config = look.config
    mean = sums.mean
    if mean is None or sums.count < config.warmup_severe_min_requests:
        return None
    stable_mean = stable_sums.mean
    reference = max(allowed, stable_mean or 0.0)
    if mean <= config.warmup_severe_multiple * reference:
        return None
    shown_stable = "n/a" if stable_mean is None else format_ratio(stable_mean)
    message = (
        f"{label} on {look.candidate_name} severely breached during warm-up: {what} {format_ratio(mean)} > "
        f"{config.warmup_severe_multiple:g}x the SLO's {format_ratio(allowed)} and {look.stable_name}'s "
        f"{shown_stable} (n={count(sums.count)}), which rolls back even before warm-up windows count "
        "as evidence"
    )
    return look.result(slo, Verdict.FAIL, value, bound, sums.count, message)


def _warming(
    look: _Look,
    slo: str,
    label: str,
    bound: float | None,
    value: float | None,
    problem: str | None,
    shown: str,
) -> SLOResult:
    if problem is not None:
        return look.inconclusive(slo, label, bound, f"{problem} (warm-up)")
    if value is None:
        return look.inconclusive(slo, label, bound, "no data this window (warm-up)")
    message = f"{label} {shown} this window on {look.candidate_name}: warm-up, not counted as evidence"
    return look.result(slo, Verdict.INCONCLUSIVE, value, bound, 0, message)


def _warmup_quality(look: _Look, slo: QualitySLO) -> list[SLOResult]:
    candidate, stable = look.candidate, look.stable
    results: list[SLOResult] = []
    problem = data_problem(candidate.eval_score_sum, candidate.eval_score_count)
    mean = _window_share(candidate.eval_score_sum, candidate.eval_score_count)
    if slo.min_score is not None:
        shown = "n/a" if mean is None else format_ratio(mean)
        results.append(_warming(look, QUALITY_MIN_SCORE, "quality mean", slo.min_score, mean, problem, shown))
    if slo.max_drop_vs_stable is not None:
        stable_mean = (
            _window_share(stable.eval_score_sum, stable.eval_score_count) if stable is not None else None
        )
        drop = None if mean is None or stable_mean is None else stable_mean - mean
        shown = "n/a" if drop is None else format_ratio(drop)
        label = f"quality drop vs {look.stable_name}"
        results.append(_warming(look, QUALITY_MAX_DROP, label, slo.max_drop_vs_stable, drop, problem, shown))
    return results


def _warmup_percentile(
    look: _Look, slo_name: str, label: str, slo: PercentileSLO, attribute: str
) -> SLOResult:
    bound = slo.p95.total_seconds()
    hist: Histogram | None = getattr(look.candidate, attribute)
    problem = _histogram_problem(hist)
    usable = hist if problem is None else None
    value = histogram_quantile(0.95, usable) if usable is not None else None
    sums = look.updated_sums(
        f"warmup.{slo_name}@{bound:g}",
        interpolated_count_above(usable, bound) if usable is not None else None,
        usable.count if usable is not None else None,
    )
    stable_hist: Histogram | None = getattr(look.stable, attribute) if look.stable is not None else None
    stable_usable = stable_hist if _histogram_problem(stable_hist) is None else None
    # Stable's p95 edge is best chosen now, from windows that count as evidence for nothing.
    stable_edge = _stable_p95_edge(look, slo_name, bound, stable_usable)
    if stable_edge is not None:
        look.updated_ratio_test(f"{_stable_p95_prefix(slo_name)}{stable_edge:g}", None, None, None, None)
    stable_sums = look.updated_sums(
        f"warmup.stable.{slo_name}@{bound:g}",
        interpolated_count_above(stable_usable, bound) if stable_usable is not None else None,
        stable_usable.count if stable_usable is not None else None,
    )
    what = f"share above {format_seconds(bound)}"
    severe = _severe_breach(look, slo_name, label, bound, value, sums, stable_sums, P95_EXCEEDANCE, what)
    shown = "n/a" if value is None else format_seconds(value)
    return severe or _warming(look, slo_name, label, bound, value, problem, shown)


def _warmup_error_rate(look: _Look, slo: ErrorRateSLO) -> SLOResult:
    candidate, stable = look.candidate, look.stable
    problem = data_problem(candidate.requests, candidate.errors)
    sums = look.updated_sums(f"warmup.{ERROR_RATE}", candidate.errors, candidate.requests)
    stable_sums = look.updated_sums(
        f"warmup.stable.{ERROR_RATE}",
        stable.errors if stable is not None else None,
        stable.requests if stable is not None else None,
    )
    value = sums.mean
    severe = _severe_breach(
        look, ERROR_RATE, "errorRate", slo.max, value, sums, stable_sums, slo.max, "error rate"
    )
    shown = "n/a" if value is None else format_ratio(value)
    return severe or _warming(look, ERROR_RATE, "errorRate", slo.max, value, problem, shown)


def _warmup_cost(look: _Look, slo: CostSLO, pricing: Pricing | None) -> SLOResult:
    label = "costPerRequest"
    if pricing is None:
        return look.inconclusive(
            COST_PER_REQUEST, label, slo.max_usd, f"no pricing for {look.candidate_name}"
        )
    usd, problem = cost_per_request(look.candidate, pricing)
    problem = None if problem == NO_REQUESTS else problem
    shown = "n/a" if usd is None else format_usd(usd)
    return _warming(look, COST_PER_REQUEST, label, slo.max_usd, usd, problem, shown)


def _warmup_results(look: _Look, slos: SLOs, pricing: Pricing | None) -> list[SLOResult]:
    """Results for a warm-up look, in the usual order: nothing is added to any test's evidence, but a
    severe breach of errorRate or a p95 SLO (config.warmup_severe_*) over the warm-up so far rolls
    back; custom SLOs' breaches are not counted."""
    results: list[SLOResult] = []
    if slos.quality is not None:
        results.extend(_warmup_quality(look, slos.quality))
    if slos.ttft is not None:
        results.append(_warmup_percentile(look, TTFT_P95, "ttft p95", slos.ttft, "ttft"))
    if slos.latency is not None:
        results.append(_warmup_percentile(look, LATENCY_P95, "latency p95", slos.latency, "latency"))
    if slos.error_rate is not None:
        results.append(_warmup_error_rate(look, slos.error_rate))
    if slos.cost_per_request is not None:
        results.append(_warmup_cost(look, slos.cost_per_request, pricing))
    for custom in slos.custom:
        result = evaluate_custom(custom, look.candidate)
        if result.verdict is Verdict.FAIL:
            result = replace(
                result, verdict=Verdict.INCONCLUSIVE, message=f"{result.message}; warm-up, not counted"
            )
        results.append(result)
    return results


def evaluate_sequential(
    slos: SLOs,
    window: Window,
    *,
    candidate: str,
    stable: str,
    state: SequentialState | None,
    false_rollback_rate: float,
    min_requests: int,
    step: int,
    candidate_weight: int,
    pricing: Pricing | None,
    config: SequentialConfig | None = None,
    final_step: bool = True,
) -> SequentialEvaluation:
    """Add `window` to the evidence in `state` and judge the candidate; returns the next state.

    `window` must follow the previous look's window (start >= the last end): a window that
    overlaps one already counted (a retried reconcile) adds nothing, so a look can be repeated
    safely. `state` is None at the start of a rollout; state for another candidate or stable is
    discarded. `step` and `candidate_weight` (percent) are the rollout's current ones: request
    counts for minRequests restart with each step, and stable needs minRequests (and its series)
    only while it still gets traffic (candidate_weight < 100).

    `final_step` says whether passing this step promotes the candidate. Only that step needs the
    full proof (every SLO's upper bound within it); an earlier step passes on "no evidence of harm":
    minRequests met in the step, no rollback test across its boundary, and every SLO's point
    estimate within the SLO (missing data still holds).

    A new candidate's windows that start within `config.warmup_seconds` of its first window's start
    are its warm-up: they add nothing to any test's evidence nor to the step's minRequests count,
    and hold, unless errorRate or a p95 SLO is severely breached over the warm-up so far (see
    SequentialConfig), which rolls back.
    """
    config = config or SequentialConfig()
    new_candidate = state is None or state.candidate != candidate
    if state is None or new_candidate or state.stable != stable:
        # A candidate seen for the first time warms up; one that only got a new stable is warm.
        state = SequentialState(
            candidate=candidate, stable=stable, started_at=window.start if new_candidate else None
        )
    fresh = (
        state.last_window_end is None or window.start >= state.last_window_end - WINDOW_OVERLAP_SLACK_SECONDS
    )
    warmup_end = None if state.started_at is None else state.started_at + config.warmup_seconds
    warmup = warmup_end is not None and window.start < warmup_end - WINDOW_OVERLAP_SLACK_SECONDS
    candidate_window = window.variants.get(candidate) or VariantWindow(variant=candidate)
    stable_window = window.variants.get(stable)
    stable_required = candidate_weight < 100
    tests = max(rollback_test_count(slos), 1)
    look = _Look(
        state,
        candidate_window,
        stable_window,
        fresh,
        stable_required,
        rollback_miscoverage=false_rollback_rate / tests,
        config=config,
    )

    results: list[SLOResult] = []
    if warmup:
        # Whatever was counted before (nothing, unless the config changed) is kept as it was.
        look.sums.update(state.sums)
        look.ratio_tests.update(state.ratio_tests)
        look.custom_breaches.update(state.custom_breaches)
        results = _warmup_results(look, slos, pricing)
    else:
        if slos.quality is not None:
            results.extend(_quality(look, slos.quality))
        if slos.ttft is not None:
            results.append(_percentile(look, TTFT_P95, "ttft p95", slos.ttft, "ttft"))
        if slos.latency is not None:
            results.append(_percentile(look, LATENCY_P95, "latency p95", slos.latency, "latency"))
        if slos.error_rate is not None:
            results.append(_error_rate(look, slos.error_rate))
        if slos.cost_per_request is not None:
            results.append(_cost(look, slos.cost_per_request, pricing))
        results.extend(_custom(look, custom) for custom in slos.custom)
    results = [
        replace(result, verdict=Verdict.FAIL, message=state.failures[result.slo])
        if result.slo in state.failures and result.verdict is not Verdict.FAIL
        else result
        for result in results
    ]
    failures = {
        **{slo: message for slo, message in state.failures.items() if any(r.slo == slo for r in results)},
        **{r.slo: r.message for r in results if r.verdict is Verdict.FAIL and r.slo not in state.failures},
    }

    step_requests = dict(state.step_requests) if state.step == step else {}
    if fresh and not warmup:
        for key, variant_window in zip(STEP_REQUEST_KEYS, (candidate_window, stable_window), strict=True):
            requests = variant_window.requests if variant_window else None
            if _finite_nonnegative(requests):
                assert requests is not None
                step_requests[key] = step_requests.get(key, 0.0) + requests
    next_state = SequentialState(
        candidate=candidate,
        stable=stable,
        last_window_end=max(window.end, state.last_window_end or window.end)
        if fresh
        else state.last_window_end,
        step=step,
        step_requests=step_requests,
        looks=state.looks + (1 if fresh else 0),
        sums=look.sums,
        ratio_tests=look.ratio_tests,
        custom_breaches=look.custom_breaches,
        failures=failures,
        started_at=state.started_at,
    )
    if warmup and not any(result.verdict is Verdict.FAIL for result in results):
        assert warmup_end is not None
        verdict = Verdict.INCONCLUSIVE
        reason = (
            f"warm-up of {candidate} until {warmup_end:g} ({config.warmup_seconds:g}s from its first "
            "window): not counted as evidence; only a severe breach rolls back"
        )
    else:
        verdict, reason, results = _overall(
            results,
            look.no_harm,
            step_requests,
            min_requests,
            candidate,
            stable,
            stable_required,
            step,
            final_step,
        )
    if not fresh:
        reason += f" (window starting {window.start:g} was already counted)"
    return SequentialEvaluation(results=results, state=next_state, verdict=verdict, reason=reason)


def _overall(
    results: list[SLOResult],
    no_harm: Mapping[str, str],
    step_requests: Mapping[str, float],
    min_requests: int,
    candidate: str,
    stable: str,
    stable_required: bool,
    step: int,
    final_step: bool,
) -> tuple[Verdict, str, list[SLOResult]]:
    failed = [result for result in results if result.verdict is Verdict.FAIL]
    if failed:
        return Verdict.FAIL, failed[0].message, results
    if not results:
        return Verdict.INCONCLUSIVE, "no SLOs configured: nothing can justify a promotion", results
    open_results = [result for result in results if result.verdict is Verdict.INCONCLUSIVE]
    # Before the final step, an SLO that shows no evidence of harm does not hold the step.
    holding = open_results if final_step else [r for r in open_results if r.slo not in no_harm]
    if holding:
        return Verdict.INCONCLUSIVE, holding[0].message, results
    short = [
        f"{name} {format_number(step_requests.get(key, 0.0))}"
        for key, name, needed in (("candidate", candidate, True), ("stable", stable, stable_required))
        if needed and step_requests.get(key, 0.0) < min_requests
    ]
    if short:
        return (
            Verdict.INCONCLUSIVE,
            f"waiting for minRequests {min_requests} in step {step}: {', '.join(short)}",
            results,
        )
    if not open_results:
        return (
            Verdict.PASS,
            f"all {len(results)} SLOs pass on {candidate}: every upper bound within its SLO (full proof)",
            results,
        )
    passed = [
        replace(result, verdict=Verdict.PASS, message=no_harm[result.slo])
        if result.verdict is Verdict.INCONCLUSIVE
        else result
        for result in results
    ]
    proven = len(results) - len(open_results)
    reason = (
        f"step {step} passes on no evidence of harm on {candidate} (not the final step): no rollback "
        f"test crossed its boundary and every SLO's point estimate is within it ({proven} of "
        f"{len(results)} SLOs proven; the final step needs every upper bound within its SLO)"
    )
    return Verdict.PASS, reason, passed
