"""The rollout every policy drives, and running policies over traces.

Every policy gets the same rollout: the candidate starts at STEPS[0]; each minute the policy judges the
window that just closed. FAIL counts a failed check and rolls back at the policy's failure limit
(failed checks restart with each step, as in the operator); PASS moves to the next step once the step
has seen MIN_REQUESTS per version, and passing the last step promotes; INCONCLUSIVE holds. A rollout
still undecided at the end of its trace (CAP_MINUTES by default) is undecided. (The operator would
also roll back a step that holds longer than strategy.maxStepDuration and after inconclusiveLimit
windows without data; those are state-machine limits, not analysis, and are left out so that the
table shows what each analysis decides on its own.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bench.decisions.model import (
    JUDGE_DELAYS,
    MIN_REQUESTS,
    SCRAPE_SECONDS,
    SLOTS_PER_INTERVAL,
    STABLE_TTFT_P95,
    STEPS,
    TTFT_EDGES,
)
from bench.decisions.policies import FAIL, PASS, PROMOTE, Look, Policy
from bench.decisions.simulate import Slots, Trace, VersionTrace, read, scrape_lags, window_slots

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

UNDECIDED, ROLLED_BACK, PROMOTED = 0, 1, 2
_P95_EDGE = TTFT_EDGES.index(STABLE_TTFT_P95)


@dataclass
class Outcome:
    """Per replicate: how the rollout ended, when, and what the candidate had served by then."""

    decision: IntArray
    minutes: FloatArray  # NaN when undecided
    requests: FloatArray  # canary requests served until the decision (or the cap)
    bad: FloatArray  # canary requests that were bad in the scenario's sense, until then
    # Decided by the horizon's rule rather than by a test crossing a boundary (ours only).
    horizon: NDArray[np.bool_] | None = None

    @classmethod
    def concatenate(cls, outcomes: Sequence[Outcome]) -> Outcome:
        horizon = None
        if all(o.horizon is not None for o in outcomes):
            horizon = np.concatenate([o.horizon for o in outcomes if o.horizon is not None])
        return cls(
            decision=np.concatenate([o.decision for o in outcomes]),
            minutes=np.concatenate([o.minutes for o in outcomes]),
            requests=np.concatenate([o.requests for o in outcomes]),
            bad=np.concatenate([o.bad for o in outcomes]),
            horizon=horizon,
        )


class _Verdicts:
    """Judge verdicts in flight: they count in the interval in which they arrive, which depends on the
    weights the policy chose when the judged requests were served."""

    def __init__(self, replicates: int, slots: int) -> None:
        width = slots + max(JUDGE_DELAYS) * SLOTS_PER_INTERVAL
        self.passed = np.zeros((replicates, width))
        self.failed = np.zeros((replicates, width))

    def serve(self, version: VersionTrace, level: IntArray, slots: IntArray, index: IntArray) -> None:
        for delay in JUDGE_DELAYS:
            arrival = slots + delay * SLOTS_PER_INTERVAL
            for outcome, buffer in (("passed", self.passed), ("failed", self.failed)):
                served = version.verdicts[f"{outcome}_{delay}"][
                    level[:, None], slots[None, :], index[:, None]
                ]
                buffer[index[:, None], arrival[None, :]] += served

    def arriving(self, slots: IntArray, index: IntArray) -> tuple[FloatArray, FloatArray]:
        """Verdicts arriving in `slots` ([replicate, slot]; negative slots hold nothing)."""
        at = (index[:, None], np.maximum(slots, 0))
        real = slots >= 0
        return self.passed[at] * real, self.failed[at] * real


def _slots(
    version: VersionTrace, verdicts: _Verdicts, levels: IntArray, slots: IntArray, index: IntArray
) -> Slots:
    """One version's increments in `slots` ([replicate, slot], served at `levels`, the same shape);
    slots before the rollout (negative) hold nothing."""
    real = slots >= 0
    at = (levels, np.maximum(slots, 0), index[:, None])
    passed, failed = verdicts.arriving(slots, index)
    return Slots(
        requests=version.requests[at] * real,
        errors=version.errors[at] * real,
        ttft=version.ttft[at] * real[..., None],
        in_tokens=version.in_tokens[at] * real,
        out_tokens=version.out_tokens[at] * real,
        passed=passed,
        failed=failed,
        in_hist=version.in_hist[at] * real[..., None],
        out_hist=version.out_hist[at] * real[..., None],
    )


def _bad(family: str, version: VersionTrace, level: IntArray, slots: IntArray, index: IntArray) -> FloatArray:
    at = (level[:, None], slots[None, :], index[:, None])
    if family == "errors":
        return np.asarray(version.errors[at].sum(axis=1), dtype=float)
    if family == "quality":
        return np.asarray(version.failed_all[at].sum(axis=1), dtype=float)
    if family == "ttft":
        ok = version.requests[at] - version.errors[at]
        return np.asarray((ok - version.ttft[at][..., _P95_EDGE]).sum(axis=1), dtype=float)
    return np.zeros(len(index))


def _look(
    trace: Trace,
    verdicts: dict[str, _Verdicts],
    minute: int,
    index: IntArray,
    lev: IntArray,
    history: IntArray,
    lags: IntArray,
    mode: str,
    scrape_seconds: float,
) -> Look:
    """Serve this minute's slots at the replicates' levels and read the window that just closed."""
    slots = np.arange((minute - 1) * SLOTS_PER_INTERVAL, minute * SLOTS_PER_INTERVAL)
    verdicts["candidate"].serve(trace.candidate, lev, slots, index)
    verdicts["stable"].serve(trace.stable, lev, slots, index)
    aligned = np.broadcast_to(slots, (len(index), len(slots)))
    levels = np.broadcast_to(lev[:, None], aligned.shape)
    candidate_slots = _slots(trace.candidate, verdicts["candidate"], levels, aligned, index)
    stable_slots = _slots(trace.stable, verdicts["stable"], levels, aligned, index)
    candidate_exact, stable_exact = read(candidate_slots, "exact"), read(stable_slots, "exact")
    served = candidate_exact.requests
    if lags[index].any():
        moved = window_slots(minute, lags[index])
        moved_levels = history[index[:, None], np.maximum(moved, 0) // SLOTS_PER_INTERVAL]
        candidate_exact = read(
            _slots(trace.candidate, verdicts["candidate"], moved_levels, moved, index), "exact"
        )
        stable_exact = read(_slots(trace.stable, verdicts["stable"], moved_levels, moved, index), "exact")
    return Look(
        minute=minute,
        index=index,
        level=lev,
        candidate=candidate_exact if mode == "exact" else read(candidate_slots, mode),
        stable=stable_exact if mode == "exact" else read(stable_slots, mode),
        candidate_exact=candidate_exact,
        stable_exact=stable_exact,
        served=served,
        scrape_seconds=scrape_seconds,
    )


def run(policy: Policy, trace: Trace, mode: str, scrape_seconds: float = SCRAPE_SECONDS) -> Outcome:
    """Drive one rollout per replicate of `trace` with `policy`.

    Counters are read as `policy.counters` says when it says ("exact" for ours and the oracle), else
    as `mode`. Exact reads lag each window by the scrape phase (simulate.scrape_lags); increase()
    reads are Prometheus' at the default 15 s scrapes, aligned with the window."""
    mode = getattr(policy, "counters", mode)
    replicates = trace.replicates
    lags = scrape_lags(scrape_seconds, replicates)
    # The level of every replicate in every minute so far: lagged reads reach into the previous one.
    history = np.zeros((replicates, trace.minutes), np.int64)
    level = np.zeros(replicates, np.int64)
    failed_checks = np.zeros(replicates, np.int64)
    step_requests = np.zeros((replicates, 2))
    decision = np.zeros(replicates, np.int64)
    minutes = np.full(replicates, np.nan)
    served = np.zeros(replicates)
    bad = np.zeros(replicates)
    width = trace.minutes * SLOTS_PER_INTERVAL
    verdicts = {"candidate": _Verdicts(replicates, width), "stable": _Verdicts(replicates, width)}
    policy.start(replicates)
    for minute in range(1, trace.minutes + 1):
        index = np.flatnonzero(decision == UNDECIDED)
        if len(index) == 0:
            break
        lev = level[index]
        history[index, minute - 1] = lev
        look = _look(trace, verdicts, minute, index, lev, history, lags, mode, scrape_seconds)
        served[index] += look.served
        slots = np.arange((minute - 1) * SLOTS_PER_INTERVAL, minute * SLOTS_PER_INTERVAL)
        bad[index] += _bad(trace.scenario.family, trace.candidate, lev, slots, index)
        step_requests[index, 0] += look.candidate.requests
        step_requests[index, 1] += look.stable.requests
        verdict = policy.look(look)

        failing = index[verdict == FAIL]
        failed_checks[failing] += 1
        rolled_back = failing[failed_checks[failing] >= policy.failure_limit]
        decision[rolled_back] = ROLLED_BACK
        minutes[rolled_back] = minute

        promoting = index[verdict == PROMOTE]
        decision[promoting] = PROMOTED
        minutes[promoting] = minute

        passing = index[verdict == PASS]
        ready = passing[np.all(step_requests[passing] >= MIN_REQUESTS, axis=1)]
        last = ready[level[ready] == len(STEPS) - 1]
        decision[last] = PROMOTED
        minutes[last] = minute
        advancing = ready[level[ready] < len(STEPS) - 1]
        level[advancing] += 1
        failed_checks[advancing] = 0
        step_requests[advancing] = 0.0
    horizon = getattr(policy, "at_horizon", None)
    if horizon is not None:
        horizon = np.asarray(horizon, bool) & (decision != UNDECIDED)
    return Outcome(decision=decision, minutes=minutes, requests=served, bad=bad, horizon=horizon)


def run_chunks(
    make_policy: Callable[[], Policy],
    traces: Callable[[int], Trace],
    chunks: int,
    mode: str,
    scrape_seconds: float = SCRAPE_SECONDS,
) -> Outcome:
    return Outcome.concatenate(
        [run(make_policy(), traces(chunk), mode, scrape_seconds) for chunk in range(chunks)]
    )
