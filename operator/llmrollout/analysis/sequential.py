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

Layout: each SLO family's tests live in its module under analysis/slos/ (the registry there is the
only list of them); the evidence they share (state, a look's updates, warm-up, configuration) in
analysis/evidence/; this module runs the families over one window and combines their verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from llmrollout.analysis.checks import finite_nonnegative
from llmrollout.analysis.evidence import (
    P95_EXCEEDANCE,
    PERCENTILE_EDGE_TESTS,
    STABLE_P95_MIN_REQUESTS,
    STEP_REQUEST_KEYS,
    WINDOW_OVERLAP_SLACK_SECONDS,
    Look,
    SequentialConfig,
    SequentialState,
    load_state,
)
from llmrollout.analysis.messages import format_number
from llmrollout.analysis.observations import VariantWindow, Window
from llmrollout.analysis.results import SLOResult
from llmrollout.analysis.slos import FAMILIES, rollback_test_count
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import Pricing, SLOs

__all__ = [
    "P95_EXCEEDANCE",
    "PERCENTILE_EDGE_TESTS",
    "STABLE_P95_MIN_REQUESTS",
    "WINDOW_OVERLAP_SLACK_SECONDS",
    "SequentialConfig",
    "SequentialEvaluation",
    "SequentialState",
    "evaluate_sequential",
    "load_state",
    "rollback_test_count",
]


@dataclass(frozen=True)
class SequentialEvaluation:
    results: list[SLOResult]
    state: SequentialState
    verdict: Verdict
    reason: str


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
    look = Look(
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
        results = [result for family in FAMILIES for result in family.warmup(look, slos, pricing)]
    else:
        results = [result for family in FAMILIES for result in family.sequential(look, slos, pricing)]
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
            if finite_nonnegative(requests):
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
