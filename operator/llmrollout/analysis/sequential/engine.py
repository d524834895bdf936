"""The sequential method on a batch of replicates: add one window to every test, decide, combine.

Typed results only (arrays of codes and numbers); render.py words them for the operator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from functools import cache, partial

import numpy as np
from numpy.typing import NDArray

from llmrollout.analysis import bernstein, difference, sprt
from llmrollout.analysis.batch import WindowBatch
from llmrollout.analysis.confidence import lower_bounds, upper_bounds
from llmrollout.analysis.hypotheses import (
    WINDOW_OVERLAP_SLACK_SECONDS,
    BreachCount,
    CountTest,
    LookInput,
    MeanTest,
    SequentialConfig,
    SLOLook,
    Test,
)
from llmrollout.analysis.sequential.state import SequentialState
from llmrollout.analysis.slos import FAMILIES, rollback_test_count
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import Pricing, SLOs

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]
PASS, HOLD, FAIL = int(Verdict.PASS), int(Verdict.INCONCLUSIVE), int(Verdict.FAIL)


class How(IntEnum):
    """How an SLO's verdict came about, per replicate."""

    OPEN = 0  # gathering evidence
    CLEARED = 1  # every test cleared (the SLO is met beyond the miss rate)
    ROLLED_BACK = 2  # a test crossed its rollback boundary
    HORIZON_CLEARED = 3  # open at the horizon; the evidence leaned towards H0
    HORIZON_ROLLED_BACK = 4  # open at the horizon; the evidence leaned towards H1
    SEVERE_WARMUP = 5  # a severe breach during the warm-up
    WARMUP = 6  # warm-up: nothing counted
    MISSING = 7  # this window's data are missing and nothing decided yet


@dataclass(frozen=True)
class TestReport:
    """One test's evidence after this look, per replicate."""

    test: Test
    code: IntArray  # sprt.OPEN / CLEARED / ROLLED_BACK
    log_evidence: FloatArray  # LLR (count tests), NaN otherwise
    rollback_at: float
    clear_at: float
    candidate_events: FloatArray  # pooled: events (count), total (mean), breaches in a row (breach)
    candidate_exposure: FloatArray
    stable_events: FloatArray
    stable_exposure: FloatArray
    lower: FloatArray  # mean tests: the bound deciding a rollback / a clearance (see mean_bounds)
    upper: FloatArray
    # Count tests: the log of the mixture that rolls back (sprt.mixture_llr; the LLR without one), and
    # the LLR at which H1's share of the mixture alone reaches rollback_at.
    rollback_evidence: FloatArray | None = None
    h1_rollback_at: float = math.nan
    # Mean tests with a bound on squares (MeanTest.square): the pooled bound, and stable's for a drop.
    square: FloatArray | None = None
    stable_square: FloatArray | None = None
    # Bounds found on demand for one replicate (a search too costly to run for every replicate of a
    # batch, and only messages read them); lower and upper are NaN then.
    bounds: Callable[[int], tuple[float, float]] | None = None

    def mean_bounds(self, i: int = 0) -> tuple[float, float]:
        """A mean test's [lower, upper] bounds for replicate i."""
        if self.bounds is not None:
            return self.bounds(i)
        return float(self.lower[i]), float(self.upper[i])

    def test_ready(self, i: int = 0) -> bool:
        """Whether the test was set up (its parameters chosen) for replicate i."""
        ready = getattr(self.test, "ready", None)
        return True if ready is None else bool(ready[i])


@dataclass(frozen=True)
class SLODecision:
    look: SLOLook
    verdict: IntArray
    how: IntArray
    harmless: BoolArray  # no test rolled back and no pooled estimate far beyond its H1 (_harmless)
    tests: tuple[TestReport, ...]
    decided_by: IntArray  # index into tests of the test that decided a rollback (-1: none)


@dataclass(frozen=True)
class BatchEvaluation:
    state: SequentialState
    slos: tuple[SLODecision, ...]
    verdict: IntArray  # FAIL, PASS (every SLO cleared) or HOLD
    passes_step: BoolArray  # the step may pass: PASS, or no evidence of harm before the final step
    warming: bool
    fresh: bool
    at_horizon: bool
    warmup_ends: float | None


def _miscoverage(false_rollback_rate: float, slos: SLOs) -> float:
    return false_rollback_rate / max(rollback_test_count(slos), 1)


def evaluate_batch(
    slos: SLOs,
    window: WindowBatch,
    *,
    candidate: str,
    stable: str,
    state: SequentialState | None,
    false_rollback_rate: float,
    miss_rate: float,
    pricing: Pricing | None,
    stable_required: bool,
    final_step: BoolArray,
    at_horizon: bool = False,
    config: SequentialConfig | None = None,
) -> BatchEvaluation:
    """Add `window` to the evidence in `state` and judge the candidate in every replicate.

    `window` must follow the previous look's (start >= the last end): one that overlaps a window
    already counted (a retried reconcile) adds nothing, so a look can be repeated safely. A state for
    another candidate or stable is discarded. `final_step` says per replicate whether passing this
    step promotes: only then must every SLO be cleared; before it, a step passes on no evidence of
    harm. At the horizon every open test is decided by sprt.truncate.
    """
    config = config or SequentialConfig()
    replicates = window.replicates
    new_candidate = state is None or state.candidate != candidate
    if state is None or new_candidate or state.stable != stable or state.replicates != replicates:
        state = SequentialState(
            candidate=candidate,
            stable=stable,
            replicates=replicates,
            started_at=window.start if new_candidate else None,
        )
    fresh = (
        state.last_window_end is None or window.start >= state.last_window_end - WINDOW_OVERLAP_SLACK_SECONDS
    )
    warmup_ends = None if state.started_at is None else state.started_at + config.warmup_seconds
    warming = warmup_ends is not None and window.start < warmup_ends - WINDOW_OVERLAP_SLACK_SECONDS
    counting = fresh and not warming
    look = LookInput(
        window=window,
        candidate_name=candidate,
        stable_name=stable,
        stable_required=stable_required,
        params={k.removeprefix("param."): v for k, v in state.values.items() if k.startswith("param.")},
        fresh=fresh,
        warmup=warming,
    )
    values = dict(state.values)
    miscoverage = _miscoverage(false_rollback_rate, slos)
    sprt.boundaries(miscoverage, miss_rate)  # refuses impossible error rates before any work
    decisions: list[SLODecision] = []
    for family in FAMILIES:
        for slo_look in family.observe(look, slos, pricing, config):
            reports = tuple(
                _update(test, values, counting, miscoverage, miss_rate, config) for test in slo_look.tests
            )
            decisions.append(
                _decide(slo_look, reports, values, fresh, warming, at_horizon, config, replicates)
            )
    values.update({f"param.{k}": v for k, v in look.params.items()})
    values = _current(values, decisions)
    next_state = SequentialState(
        candidate=candidate,
        stable=stable,
        replicates=replicates,
        started_at=state.started_at,
        last_window_end=max(window.end, state.last_window_end or window.end)
        if fresh
        else state.last_window_end,
        looks=state.looks + (1 if fresh else 0),
        values=values,
        failures=dict(state.failures),
    )
    verdict, passes = _combine(decisions, final_step, replicates)
    if warming:
        passes = np.zeros(replicates, bool)
    return BatchEvaluation(
        state=next_state,
        slos=tuple(decisions),
        verdict=verdict,
        passes_step=passes,
        warming=warming,
        fresh=fresh,
        at_horizon=at_horizon,
        warmup_ends=warmup_ends,
    )


class _Evidence:
    """One test's slice of the state: arrays under "<test key>.<name>"."""

    def __init__(self, values: dict[str, FloatArray], key: str, replicates: int) -> None:
        self.values, self.key, self.replicates = values, key, replicates

    def get(self, name: str) -> FloatArray:
        return self.values.get(f"{self.key}.{name}", np.zeros(self.replicates))

    def has(self, name: str) -> bool:
        return f"{self.key}.{name}" in self.values

    def start_squares(self, cap: float, *squares_of: tuple[str, str]) -> None:
        """Squares' bounds for what was counted before they were kept (each (square, total) name
        pair): the widest values in [0, cap] allow, cap times the total."""
        if not self.has("square"):
            for square, total in squares_of:
                self.values[f"{self.key}.{square}"] = cap * self.get(total)

    def add(self, name: str, increment: FloatArray, where: BoolArray, counting: bool) -> FloatArray:
        value = self.get(name)
        if counting:
            value = value + np.where(where, increment, 0.0)
            self.values[f"{self.key}.{name}"] = value
        return value

    def code(self, decided: IntArray) -> IntArray:
        code = _sticky(self.get("code").astype(np.int64), decided)
        self.values[f"{self.key}.code"] = code.astype(float)
        return code


def _update(
    test: Test,
    values: dict[str, FloatArray],
    counting: bool,
    miscoverage: float,
    miss_rate: float,
    config: SequentialConfig,
) -> TestReport:
    if isinstance(test, BreachCount):
        return _update_breaches(test, _Evidence(values, test.key, len(test.breached)), counting, config)
    if isinstance(test, CountTest):
        evidence = _Evidence(values, test.key, len(test.candidate_events))
        rollback_at, clear_at = sprt.boundaries(miscoverage, miss_rate * test.miss_share)
        return _update_count(test, evidence, counting, rollback_at, clear_at, config)
    evidence = _Evidence(values, test.key, len(test.total))
    return _update_mean(test, evidence, counting, miscoverage, miss_rate * test.miss_share)


def _update_breaches(
    test: BreachCount, evidence: _Evidence, counting: bool, config: SequentialConfig
) -> TestReport:
    nan = np.full(evidence.replicates, math.nan)
    breaches = evidence.get("breaches")
    if counting:
        # A breach adds one; a look within the bound starts the count again; a missing value keeps it.
        breaches = np.where(test.breached, breaches + 1, np.where(test.within, 0.0, breaches))
        evidence.values[f"{test.key}.breaches"] = breaches
    decided = np.where(breaches >= config.custom_breaches_to_fail, sprt.ROLLED_BACK, sprt.OPEN)
    code = evidence.code(decided.astype(np.int64))
    # Within the bound this look: "cleared" for now (a custom value admits nothing stronger).
    shown = np.where(code == sprt.ROLLED_BACK, code, np.where(test.within, sprt.CLEARED, sprt.OPEN))
    zeros = np.zeros(evidence.replicates)
    return TestReport(
        test, shown.astype(np.int64), nan, math.nan, math.nan, breaches, zeros, nan, nan, nan, nan
    )


def _count_llr(test: CountTest, null: FloatArray, alternative: FloatArray) -> FloatArray:
    """This window's LLR of `alternative` against `null` (per-bucket ratios for a bucketed test)."""
    if test.bucketed:
        assert test.candidate_buckets is not None and test.stable_buckets is not None
        return sprt.bucket_ratio_llr(test.candidate_buckets, test.stable_buckets, null, alternative)
    if test.two_sample:
        assert test.stable_events is not None and test.stable_exposure is not None
        return sprt.ratio_llr(
            test.candidate_events,
            test.stable_events,
            test.candidate_exposure,
            test.stable_exposure,
            null,
            alternative,
        )
    return sprt.binomial_llr(test.candidate_events, test.candidate_exposure, null, alternative)


def _count_usable(test: CountTest) -> BoolArray:
    usable = sprt.usable(test.candidate_events, test.candidate_exposure)
    if test.stable_events is not None and test.stable_exposure is not None:
        usable &= sprt.usable(test.stable_events, test.stable_exposure)
    if test.candidate_buckets is not None and test.stable_buckets is not None:
        usable &= np.all(sprt.usable(test.candidate_buckets, test.stable_buckets), axis=-1)
    return usable


def _update_count(
    test: CountTest,
    evidence: _Evidence,
    counting: bool,
    rollback_at: float,
    clear_at: float,
    config: SequentialConfig,
) -> TestReport:
    n = evidence.replicates
    ready = np.ones(n, bool) if test.ready is None else test.ready
    if test.bucketed:
        assert test.bucket_nulls is not None and test.bucket_ratios is not None
        null, alternative = test.bucket_nulls, test.bucket_ratios
    else:
        null, alternative = test.null, test.alternative
    add = _count_usable(test) & ready
    if test.skip is not None:
        add &= ~test.skip
    llr = evidence.add("llr", _count_llr(test, null, alternative), add, counting)
    rollback_evidence, h1_rollback_at = llr, rollback_at
    if config.steep_multiple != 1.0:
        steep = sprt.steeper(null, alternative, config.steep_multiple, rate=not test.two_sample)
        steep_llr = evidence.add("llrSteep", _count_llr(test, null, steep), add, counting)
        rollback_evidence = sprt.mixture_llr(llr, steep_llr, config.steep_weight)
        h1_rollback_at = rollback_at - math.log(config.steep_weight)
    c_events = evidence.add("cEvents", test.candidate_events, add, counting)
    c_exposure = evidence.add("cExposure", test.candidate_exposure, add, counting)
    s_events = s_exposure = np.full(n, math.nan)
    if test.two_sample:
        assert test.stable_events is not None and test.stable_exposure is not None
        s_events = evidence.add("sEvents", test.stable_events, add, counting)
        s_exposure = evidence.add("sExposure", test.stable_exposure, add, counting)
    decided = sprt.decide(llr, rollback_at, clear_at, rollback_evidence)
    decided = _watch_only(test.clears, _left_out(test.applicable, decided))
    code = evidence.code(decided)
    nan = np.full(n, math.nan)
    return TestReport(
        test,
        code,
        llr,
        rollback_at,
        clear_at,
        c_events,
        c_exposure,
        s_events,
        s_exposure,
        nan,
        nan,
        rollback_evidence=rollback_evidence,
        h1_rollback_at=h1_rollback_at,
    )


def _update_mean(
    test: MeanTest, evidence: _Evidence, counting: bool, miscoverage: float, miss_rate: float
) -> TestReport:
    if test.two_sample:
        return _update_drop(test, evidence, counting, miscoverage, miss_rate)
    usable = sprt.usable(test.total, test.count) & _set_up(test)
    if test.square is not None or evidence.has("square"):
        # Once squares were bounded, a window without a bound gets the widest [0, cap] allows.
        square = _window_squares(test.square, test.total, test.cap)
        return _update_bernstein(test, square, evidence, usable, counting, miscoverage, miss_rate)
    total = evidence.add("total", test.total, usable, counting)
    observed = evidence.add("count", test.count, usable, counting)
    scaled = total / test.cap if test.cap > 0 else total
    cap = test.cap if test.cap > 0 else 1.0
    seen = observed > 0
    if test.direction == "max":
        # Roll back when even the lower bound is above the bound; clear when the upper one is within.
        lower = lower_bounds(scaled, observed, miscoverage) * cap
        upper = upper_bounds(scaled, observed, miss_rate) * cap
        back, clear = seen & (lower > test.rollback_level), seen & (upper <= test.bound)
    else:
        upper = upper_bounds(scaled, observed, miscoverage) * cap
        lower = lower_bounds(scaled, observed, miss_rate) * cap
        back, clear = seen & (upper < test.rollback_level), seen & (lower >= test.bound)
    code = evidence.code(_mean_decision(test, back, clear))
    nan = np.full(evidence.replicates, math.nan)
    return TestReport(test, code, nan, math.nan, math.nan, total, observed, nan, nan, lower, upper)


def _update_bernstein(
    test: MeanTest,
    square: FloatArray,
    evidence: _Evidence,
    usable: BoolArray,
    counting: bool,
    miscoverage: float,
    miss_rate: float,
) -> TestReport:
    """A one-sample mean test on the empirical-Bernstein e-processes: each decision tests its own
    level (the rollback level at the rollback rate, the bound at the miss rate); the bounds are for
    messages."""
    cap = test.cap
    evidence.start_squares(cap, ("square", "total"))
    total = evidence.add("total", test.total, usable, counting)
    observed = evidence.add("count", test.count, usable, counting)
    squares = evidence.add("square", square, usable, counting)
    seen = observed > 0
    rolls_back, clears = math.log(1 / miscoverage), math.log(1 / miss_rate)
    above = partial(bernstein.log_e_above, total, squares, observed)
    below = partial(bernstein.log_e_below, total, squares, observed, cap=cap)
    if test.direction == "max":
        back, clear = seen & (above(test.rollback_level) >= rolls_back), seen & (below(test.bound) >= clears)
        lower = bernstein.lower_bounds(total, squares, observed, miscoverage)
        upper = bernstein.upper_bounds(total, squares, observed, miss_rate, cap)
    else:
        back, clear = seen & (below(test.rollback_level) >= rolls_back), seen & (above(test.bound) >= clears)
        lower = bernstein.lower_bounds(total, squares, observed, miss_rate)
        upper = bernstein.upper_bounds(total, squares, observed, miscoverage, cap)
    code = evidence.code(_mean_decision(test, back, clear))
    nan = np.full(evidence.replicates, math.nan)
    return TestReport(
        test, code, nan, math.nan, math.nan, total, observed, nan, nan, lower, upper, square=squares
    )


def _set_up(test: MeanTest) -> BoolArray:
    ready = np.ones(len(test.total), bool) if test.ready is None else test.ready
    return ready if test.applicable is None else ready & test.applicable


def _mean_decision(test: MeanTest, back: BoolArray, clear: BoolArray) -> IntArray:
    decided = np.where(back, sprt.ROLLED_BACK, np.where(clear, sprt.CLEARED, sprt.OPEN)).astype(np.int64)
    return _watch_only(test.clears, _left_out(test.applicable, decided))


def _left_out(applicable: BoolArray | None, decided: IntArray) -> IntArray:
    """A test that does not apply counts as cleared: the SLO rests on its other tests."""
    if applicable is None:
        return decided
    return np.where(applicable, decided, sprt.CLEARED).astype(np.int64)


def _watch_only(clears: BoolArray | None, decided: IntArray) -> IntArray:
    """A test that may not clear still rolls back; otherwise it stands aside (as cleared)."""
    if clears is None:
        return decided
    return np.where(clears | (decided == sprt.ROLLED_BACK), decided, sprt.CLEARED).astype(np.int64)


def _update_drop(
    test: MeanTest, evidence: _Evidence, counting: bool, miscoverage: float, miss_rate: float
) -> TestReport:
    """Stable's mean minus the candidate's, at most `bound`. Where either version's squares are
    bounded (now, or at an earlier look), difference.py's e-processes test each level directly and
    give the bounds for messages; else each mean's confidence sequence at half the level, so that the
    difference's bounds hold at the full one."""
    assert test.stable_total is not None and test.stable_count is not None
    usable = sprt.usable(test.total, test.count, test.stable_total, test.stable_count) & _set_up(test)
    cap = test.cap if test.cap > 0 else 1.0
    squared = test.square is not None or test.stable_square is not None or evidence.has("square")
    if squared:
        evidence.start_squares(cap, ("square", "total"), ("sSquare", "sTotal"))
    total = evidence.add("total", test.total, usable, counting)
    observed = evidence.add("count", test.count, usable, counting)
    s_total = evidence.add("sTotal", test.stable_total, usable, counting)
    s_observed = evidence.add("sCount", test.stable_count, usable, counting)
    seen = (observed > 0) & (s_observed > 0)
    nan = np.full(evidence.replicates, math.nan)
    if squared:
        square = evidence.add("square", _window_squares(test.square, test.total, cap), usable, counting)
        s_square = evidence.add(
            "sSquare", _window_squares(test.stable_square, test.stable_total, cap), usable, counting
        )
        candidate = difference.Sums.of(total / cap, square / cap**2, observed)
        stable = difference.Sums.of(s_total / cap, s_square / cap**2, s_observed)
        rolls_back, clears = math.log(1 / miscoverage), math.log(1 / miss_rate)
        back = seen & (
            difference.log_e_drop_above(stable, candidate, test.rollback_level / cap) >= rolls_back
        )
        clear = seen & (difference.log_e_drop_below(stable, candidate, test.bound / cap) >= clears)

        @cache  # a message may read them more than once
        def bounds(i: int) -> tuple[float, float]:
            low, high = difference.drop_bounds(stable.row(i), candidate.row(i), miscoverage, miss_rate)
            return cap * float(low[0]), cap * float(high[0])

        code = evidence.code(_mean_decision(test, back, clear))
        return TestReport(
            test,
            code,
            nan,
            math.nan,
            math.nan,
            total,
            observed,
            s_total,
            s_observed,
            nan,
            nan,
            square=square,
            stable_square=s_square,
            bounds=bounds,
        )
    c, s = total / cap, s_total / cap
    drop_low = (
        lower_bounds(s, s_observed, miscoverage / 2) - upper_bounds(c, observed, miscoverage / 2)
    ) * cap
    drop_high = (upper_bounds(s, s_observed, miss_rate / 2) - lower_bounds(c, observed, miss_rate / 2)) * cap
    back, clear = seen & (drop_low > test.rollback_level), seen & (drop_high <= test.bound)
    code = evidence.code(_mean_decision(test, back, clear))
    return TestReport(
        test, code, nan, math.nan, math.nan, total, observed, s_total, s_observed, drop_low, drop_high
    )


def _window_squares(square: FloatArray | None, total: FloatArray, cap: float) -> FloatArray:
    """A window's bound on its sum of squares: the test's where it has one, else the widest values
    in [0, cap] allow (each at most cap, so its square at most cap times itself)."""
    widest = cap * np.maximum(total, 0.0)
    if square is None:
        return widest
    with np.errstate(invalid="ignore"):
        bounded: FloatArray = np.where(np.isfinite(square) & (square >= 0), square, widest)
    return bounded


def _current(values: dict[str, FloatArray], decisions: list[SLODecision]) -> dict[str, FloatArray]:
    """Only the evidence of the tests the spec configures now: a changed bound or tolerance starts a
    test afresh under a new key, and the old one must not grow status forever."""
    prefixes = tuple(
        prefix
        for decision in decisions
        for prefix in (
            f"warmup.{decision.look.slo}.",
            *(f"{report.test.key}." for report in decision.tests),
            *(f"param.{report.test.key}." for report in decision.tests),
        )
    )
    return {key: value for key, value in values.items() if key.startswith(prefixes)}


def _sticky(previous: IntArray, decided: IntArray) -> IntArray:
    """A rollback is final; a clearance stands unless a later rollback overrides it (the rollback
    boundary stays armed after clearing: Ville's bound covers the whole path)."""
    rolled = (previous == sprt.ROLLED_BACK) | (decided == sprt.ROLLED_BACK)
    cleared = (previous == sprt.CLEARED) | (decided == sprt.CLEARED)
    return np.where(rolled, sprt.ROLLED_BACK, np.where(cleared, sprt.CLEARED, sprt.OPEN)).astype(np.int64)


def mean_estimate(report: TestReport) -> FloatArray:
    """A mean test's point estimate: the candidate's mean, or stable's minus the candidate's."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = report.candidate_events / np.where(
            report.candidate_exposure > 0, report.candidate_exposure, np.nan
        )
        if isinstance(report.test, MeanTest) and report.test.two_sample:
            stable = report.stable_events / np.where(
                report.stable_exposure > 0, report.stable_exposure, np.nan
            )
            return np.asarray(stable - mean, dtype=float)
    return np.asarray(mean, dtype=float)


def _harmless(reports: tuple[TestReport, ...], replicates: int, config: SequentialConfig) -> BoolArray:
    """No evidence of harm: no test rolled back, and no count test's pooled estimate is beyond a
    regression SequentialConfig.harm_multiple times as far from H0 as its H1 (log scale), nor a mean
    test's beyond its bound. A test left out (not applicable) says nothing either way, nor does a
    mean test standing aside (maxDropVsStable's scores, when the failures are its route: the same
    drop, and the failures' test holds on it).

    Not H1 itself: a healthy candidate whose first verdicts looked as bad as H1 was held at its
    first step, where it gathers evidence at a tenth of the final step's pace, so its estimate stayed
    there; a quarter of the identical candidates the horizon rolled back had reached the horizon
    with under a quarter of the judged answers the others had."""
    within = np.ones(replicates, bool)
    for report in reports:
        test = report.test
        with np.errstate(divide="ignore", invalid="ignore"):
            if isinstance(test, CountTest):
                # Nothing counted yet is no evidence of anything, harm or its absence.
                seen = report.candidate_exposure > 0
                rate = report.candidate_events / report.candidate_exposure
                harm = sprt.steeper(
                    test.null, test.alternative, config.harm_multiple, rate=not test.two_sample
                )
                if test.two_sample:
                    harm = harm * (report.stable_events / report.stable_exposure)
                ok = seen & ~(rate > harm)
            elif isinstance(test, MeanTest):
                mean = mean_estimate(report)
                beyond = mean > test.bound if test.direction == "max" else mean < test.bound
                ok = (report.candidate_exposure > 0) & ~beyond
                if test.clears is not None:
                    ok = ok | ~test.clears
            else:
                ok = report.code != sprt.ROLLED_BACK
        left_out = getattr(test, "applicable", None)
        if left_out is not None:
            ok = ok | ~left_out
        within &= ok & (report.code != sprt.ROLLED_BACK)
    return within


def _decide(
    look: SLOLook,
    reports: tuple[TestReport, ...],
    values: dict[str, FloatArray],
    fresh: bool,
    warming: bool,
    at_horizon: bool,
    config: SequentialConfig,
    replicates: int,
) -> SLODecision:
    how = np.full(replicates, int(How.OPEN))
    decided_by = np.full(replicates, -1)
    rolled = np.zeros(replicates, bool)
    for index, report in enumerate(reports):
        hit = (report.code == sprt.ROLLED_BACK) & ~rolled
        decided_by = np.where(hit, index, decided_by)
        rolled |= hit
    if look.clear_any:
        cleared = np.zeros(replicates, bool)
        for report in reports:
            cleared |= report.code == sprt.CLEARED
    else:
        cleared = np.ones(replicates, bool) if reports else np.zeros(replicates, bool)
        for report in reports:
            cleared &= report.code == sprt.CLEARED
    how = np.where(cleared, int(How.CLEARED), how)
    how = np.where(rolled, int(How.ROLLED_BACK), how)

    if warming and look.warmup is not None:
        severe = _severe(look, values, fresh, config, replicates)
        how = np.where(severe & ~rolled, int(How.SEVERE_WARMUP), how)
        rolled |= severe
    if warming:
        how = np.where(rolled, how, int(How.WARMUP))
    if at_horizon and not warming:
        open_ = ~rolled & ~cleared
        # An SLO without a test (its buckets too coarse, no pricing) has nothing to clear it.
        leans_back = np.zeros(replicates, bool) if reports else np.ones(replicates, bool)
        for index, report in enumerate(reports):
            if isinstance(report.test, CountTest):
                # No evidence at all cannot clear an SLO, even at the horizon.
                unseen = ~(report.candidate_exposure > 0)
                leans = sprt.truncate(report.log_evidence) == sprt.ROLLED_BACK
                back = (leans | unseen) & (report.code == sprt.OPEN)
            elif isinstance(report.test, MeanTest):
                # A mean test goes by its point estimate against the bound.
                mean = mean_estimate(report)
                level = report.test.rollback_level
                beyond = mean > level if report.test.direction == "max" else mean < level
                back = (beyond | np.isnan(mean)) & (report.code == sprt.OPEN)
            else:
                back = np.zeros(replicates, bool)
            decided_by = np.where(open_ & back & ~leans_back, index, decided_by)
            leans_back |= back
        how = np.where(open_ & leans_back, int(How.HORIZON_ROLLED_BACK), how)
        how = np.where(open_ & ~leans_back, int(How.HORIZON_CLEARED), how)
        rolled |= open_ & leans_back
        cleared |= open_ & ~leans_back
    missing = look.missing & ~rolled & ~cleared
    # Missing data is said even during the warm-up, so that a misconfigured series shows at once.
    how = np.where(missing & ((how == int(How.OPEN)) | (how == int(How.WARMUP))), int(How.MISSING), how)
    verdict = np.where(rolled, FAIL, np.where(cleared & ~warming, PASS, HOLD)).astype(np.int64)
    harmless = _harmless(reports, replicates, config) & ~rolled & ~look.missing
    return SLODecision(look, verdict, how.astype(np.int64), harmless, reports, decided_by.astype(np.int64))


def _severe(
    look: SLOLook, values: dict[str, FloatArray], fresh: bool, config: SequentialConfig, replicates: int
) -> BoolArray:
    """During warm-up: the candidate's share over the warm-up so far is more than
    warmup_severe_multiple x both what the SLO allows and stable's share, on enough requests."""
    assert look.warmup is not None
    c_events, c_exposure, s_events, s_exposure, allowed = look.warmup
    names = ("cEvents", "cExposure", "sEvents", "sExposure")
    sums = [values.get(f"warmup.{look.slo}.{name}", np.zeros(replicates)) for name in names]
    if fresh:
        for i, (name, value) in enumerate(
            zip(names, (c_events, c_exposure, s_events, s_exposure), strict=True)
        ):
            sums[i] = sums[i] + np.where(np.isfinite(value) & (value >= 0), value, 0.0)
            values[f"warmup.{look.slo}.{name}"] = sums[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(sums[1] > 0, sums[0] / sums[1], np.nan)
        stable_share = np.where(sums[3] > 0, sums[2] / sums[3], 0.0)
    reference = np.maximum(allowed, stable_share)
    severe: BoolArray = (sums[1] >= config.warmup_severe_min_requests) & (
        share > config.warmup_severe_multiple * reference
    )
    return severe


def _combine(
    decisions: list[SLODecision], final_step: BoolArray, replicates: int
) -> tuple[IntArray, BoolArray]:
    if not decisions:
        # No SLOs: nothing can justify a promotion.
        return np.full(replicates, HOLD, dtype=np.int64), np.zeros(replicates, bool)
    verdicts = np.stack([d.verdict for d in decisions])
    verdict = verdicts.max(axis=0).astype(np.int64)
    harmless = np.stack([d.harmless | (d.verdict == PASS) for d in decisions]).all(axis=0)
    passes = np.where(final_step, verdict == PASS, (verdict != FAIL) & harmless)
    return verdict, passes
