"""The rollout state machine: spec + status + what was observed + now -> next status and Events.

Pure: no I/O. The handler asks `due_window` whether an analysis window has closed, reads that
window's metrics, and calls `reconcile` with them; a restarted operator reading the same status
decides the same, because status is the only state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from llmrollout.analysis import SLOResult, Verdict, Window, evaluate_variant, results_to_status, worst
from llmrollout.api import (
    MAX_HISTORY,
    HistoryEntry,
    LLMDeploymentSpec,
    LLMDeploymentStatus,
    Phase,
    with_condition,
)
from llmrollout.rollout.outcome import Event, Outcome

READY = "Ready"
PROGRESSING = "Progressing"
METRICS = "MetricsAvailable"

Action = Literal["promote", "abort"]


@dataclass(frozen=True)
class Observation:
    """What the handler read for a due window: the data, or why there is none."""

    start: datetime
    end: datetime
    window: Window | None = None
    unavailable: str | None = None


def serving_stable(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> str:
    """The version serving now: status.stable after a promotion, until the user changes spec.stable."""
    promoted = status.stable is not None and any(v.name == status.stable for v in spec.variants)
    if promoted and status.spec_stable in (None, spec.stable):
        assert status.stable is not None
        return status.stable
    return spec.stable


def all_to(spec: LLMDeploymentSpec, serving: str) -> dict[str, int]:
    return {variant.name: 100 if variant.name == serving else 0 for variant in spec.variants}


def split(spec: LLMDeploymentSpec, stable: str, candidate: str, candidate_weight: int) -> dict[str, int]:
    weights = {variant.name: 0 for variant in spec.variants}
    weights[stable] = 100 - candidate_weight
    weights[candidate] = candidate_weight
    return weights


def due_window(
    spec: LLMDeploymentSpec, status: LLMDeploymentStatus, now: datetime
) -> tuple[datetime, datetime] | None:
    """The window to read now, if a rollout is progressing and a full interval has passed."""
    if status.phase != Phase.PROGRESSING or spec.paused or status.last_analysis_at is None:
        return None
    if status.candidate is None or status.candidate != desired_candidate(spec, status):
        return None
    if now - status.last_analysis_at < spec.strategy.interval:
        return None
    return status.last_analysis_at, now


def desired_candidate(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> str | None:
    candidate = spec.candidate
    return candidate if candidate is not None and candidate != serving_stable(spec, status) else None


class _Builder:
    """Accumulates the next status and its Events; keeps `reconcile` readable."""

    def __init__(self, status: LLMDeploymentStatus, generation: int | None, now: datetime) -> None:
        self.status = status
        self.generation = generation
        self.now = now
        self.events: list[Event] = []

    def update(self, **changes: object) -> None:
        self.status = self.status.model_copy(update=changes)

    def condition(
        self, condition_type: str, state: Literal["True", "False", "Unknown"], reason: str, message: str
    ) -> None:
        conditions = with_condition(
            self.status.conditions, condition_type, state, reason, message, self.now, self.generation
        )
        self.update(conditions=conditions)

    def event(self, kind: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(kind, reason, message))
        history = [*self.status.history, HistoryEntry(time=self.now, reason=reason, message=message)]
        self.update(history=history[-MAX_HISTORY:])

    def outcome(self) -> Outcome:
        self.update(observed_generation=self.generation)
        return Outcome(self.status, self.events)


def reconcile(
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    generation: int | None,
    now: datetime,
    observation: Observation | None = None,
    action: Action | None = None,
) -> Outcome:
    """The next status for this spec; `observation` is the due window's data, `action` a user's command."""
    b = _Builder(status, generation, now)
    stable = serving_stable(spec, status)
    candidate = desired_candidate(spec, status)
    if status.phase in (None, Phase.FAILED):
        b.event("Normal", "Initialized", f"{stable} serves 100%")
    b.condition(READY, "True", "Reconciled", f"{stable} is stable")
    b.update(stable=stable, spec_stable=spec.stable)

    if candidate is None:
        _settle(spec, b, stable)
    elif candidate != status.candidate:
        _start(spec, b, stable, candidate, restarted=status.phase == Phase.PROGRESSING)
    elif status.phase in (Phase.ROLLED_BACK, Phase.PROMOTED):
        pass  # finished with this candidate; a new spec.candidate starts the next rollout
    elif action == "abort":
        _roll_back(spec, b, stable, candidate, "Aborted", f"rollout of {candidate} aborted by a user")
    elif action == "promote":
        _promote(spec, b, candidate, f"{candidate} promoted by a user at {status.candidate_weight}%")
    elif spec.paused:
        _pause(b, candidate)
    elif status.phase == Phase.PAUSED:
        b.update(phase=Phase.PROGRESSING, last_analysis_at=now)
        b.condition(PROGRESSING, "True", "Resumed", f"rollout of {candidate} resumed at step {status.step}")
        b.event("Normal", "Resumed", f"rollout of {candidate} resumed at {status.candidate_weight}%")
    elif observation is not None:
        _analyse(spec, b, stable, candidate, observation)
    return b.outcome()


def _settle(spec: LLMDeploymentSpec, b: _Builder, stable: str) -> None:
    phase = b.status.phase
    if phase not in (Phase.PROMOTED, Phase.IDLE) or b.status.weights != all_to(spec, stable):
        phase = Phase.PROMOTED if phase == Phase.PROMOTED else Phase.IDLE
    b.update(
        phase=phase,
        candidate=None,
        candidate_weight=0,
        step=0,
        weights=all_to(spec, stable),
        step_started_at=None,
        last_analysis_at=None,
        failed_checks=0,
        inconclusive_checks=0,
        step_requests={},
    )
    b.condition(PROGRESSING, "False", "NoCandidate", f"{stable} serves 100%; no candidate to roll out")


def _start(spec: LLMDeploymentSpec, b: _Builder, stable: str, candidate: str, restarted: bool) -> None:
    previous = b.status.candidate
    weight = spec.strategy.steps[0]
    b.update(
        phase=Phase.PROGRESSING,
        candidate=candidate,
        step=0,
        candidate_weight=weight,
        weights=split(spec, stable, candidate, weight),
        step_started_at=b.now,
        last_analysis_at=b.now,
        failed_checks=0,
        inconclusive_checks=0,
        step_requests={},
        analysis={},
    )
    steps = len(spec.strategy.steps)
    message = f"rolling out {candidate} over {stable}: {weight}% (step 1/{steps})"
    if restarted:
        message = f"candidate changed from {previous} to {candidate}; {message}"
    b.condition(PROGRESSING, "True", "RolloutStarted", message)
    b.event("Normal", "RolloutRestarted" if restarted else "RolloutStarted", message)


def _pause(b: _Builder, candidate: str) -> None:
    if b.status.phase != Phase.PAUSED:
        message = f"rollout of {candidate} paused at {b.status.candidate_weight}%"
        b.update(phase=Phase.PAUSED)
        b.condition(PROGRESSING, "Unknown", "Paused", message)
        b.event("Normal", "Paused", message)


def _promote(spec: LLMDeploymentSpec, b: _Builder, candidate: str, message: str) -> None:
    b.update(
        phase=Phase.PROMOTED,
        stable=candidate,
        candidate=None,
        candidate_weight=0,
        weights=all_to(spec, candidate),
        step=len(spec.strategy.steps) - 1,
        step_started_at=None,
        last_analysis_at=None,
    )
    b.condition(PROGRESSING, "False", "Promoted", message)
    b.event("Normal", "Promoted", message)


def _roll_back(
    spec: LLMDeploymentSpec, b: _Builder, stable: str, candidate: str, reason: str, message: str
) -> None:
    b.update(
        phase=Phase.ROLLED_BACK,
        candidate_weight=0,
        weights=all_to(spec, stable),
        step_started_at=None,
        last_analysis_at=None,
    )
    b.condition(PROGRESSING, "False", reason, message)
    b.event("Warning", "RolledBack", f"{candidate} rolled back to 0%: {message}")


def _analyse(
    spec: LLMDeploymentSpec, b: _Builder, stable: str, candidate: str, observation: Observation
) -> None:
    b.update(last_analysis_at=observation.end)
    if observation.window is None:
        _inconclusive(spec, b, stable, candidate, observation.unavailable or "no metrics", [])
        b.condition(METRICS, "False", "MetricsUnavailable", observation.unavailable or "no metrics")
        return
    window = observation.window
    stable_window = window.variants.get(stable)
    candidate_window = window.variants.get(candidate)
    if candidate_window is None or stable_window is None:
        _inconclusive(spec, b, stable, candidate, "the provider returned no data for a variant", [])
        return
    pricing = spec.variant(candidate).pricing
    results = evaluate_variant(spec.slos, candidate_window, pricing, baseline=stable_window)
    b.condition(METRICS, "True", "MetricsRead", f"read window ending {observation.end.isoformat()}")
    requests = {
        name: b.status.step_requests.get(name, 0.0) + (w.requests or 0.0)
        for name, w in ((stable, stable_window), (candidate, candidate_window))
    }
    b.update(step_requests=requests, analysis=_analysis_status(observation, results))
    verdict = worst(r.verdict for r in results) if results else Verdict.PASS
    if verdict == Verdict.FAIL:
        _failed(spec, b, stable, candidate, results)
    elif verdict == Verdict.INCONCLUSIVE:
        reasons = "; ".join(r.message for r in results if r.verdict == Verdict.INCONCLUSIVE)
        _inconclusive(spec, b, stable, candidate, reasons, results)
    else:
        b.update(inconclusive_checks=0)
        _maybe_advance(spec, b, stable, candidate, results)


def _analysis_status(observation: Observation, results: Sequence[SLOResult]) -> dict[str, object]:
    return {
        "windowStart": observation.start.isoformat(),
        "windowEnd": observation.end.isoformat(),
        "verdict": (worst(r.verdict for r in results) if results else Verdict.PASS).label,
        "results": results_to_status(results),
    }


def _failed(
    spec: LLMDeploymentSpec, b: _Builder, stable: str, candidate: str, results: Sequence[SLOResult]
) -> None:
    breaches = "; ".join(r.message for r in results if r.verdict == Verdict.FAIL)
    failed = b.status.failed_checks + 1
    b.update(failed_checks=failed, inconclusive_checks=0)
    limit = spec.analysis.failure_threshold
    b.event("Warning", "SLOBreached", f"{breaches} (failed check {failed}/{limit})")
    if failed >= limit:
        _roll_back(spec, b, stable, candidate, "SLOBreached", breaches)


def _inconclusive(
    spec: LLMDeploymentSpec, b: _Builder, stable: str, candidate: str, why: str, results: Sequence[SLOResult]
) -> None:
    count = b.status.inconclusive_checks + 1
    limit = spec.analysis.inconclusive_limit
    b.update(inconclusive_checks=count)
    message = f"holding {candidate} at {b.status.candidate_weight}%: inconclusive ({count}/{limit}): {why}"
    if count >= limit:
        _roll_back(
            spec, b, stable, candidate, "InconclusiveLimit", f"{count} inconclusive analyses in a row: {why}"
        )
        return
    b.condition(PROGRESSING, "True", "Inconclusive", message)
    b.event("Warning", "AnalysisInconclusive", message)


def _maybe_advance(
    spec: LLMDeploymentSpec, b: _Builder, stable: str, candidate: str, results: Sequence[SLOResult]
) -> None:
    needed = spec.strategy.min_requests
    short = {v: n for v, n in b.status.step_requests.items() if n < needed}
    started = b.status.step_started_at or b.now
    if short:
        counts = ", ".join(f"{v} {n:.0f}/{needed}" for v, n in sorted(short.items()))
        b.condition(PROGRESSING, "True", "WaitingForRequests", f"SLOs met; requests this step: {counts}")
        return
    if b.now - started < spec.strategy.interval - timedelta(milliseconds=1):
        return
    evidence = "; ".join(r.message for r in results) or "no SLOs configured"
    steps = spec.strategy.steps
    following = b.status.step + 1
    if following >= len(steps) or steps[following] >= 100:
        _promote(spec, b, candidate, f"{candidate} promoted after {len(steps)} steps: {evidence}")
        return
    weight = steps[following]
    b.update(
        step=following,
        candidate_weight=weight,
        weights=split(spec, stable, candidate, weight),
        step_started_at=b.now,
        failed_checks=0,
        step_requests={},
    )
    message = f"{candidate} to {weight}% (step {following + 1}/{len(steps)}): {evidence}"
    b.condition(PROGRESSING, "True", "StepAdvanced", message)
    b.event("Normal", "StepAdvanced", message)


def reject(
    reason: str, message: str, status: LLMDeploymentStatus, generation: int | None, now: datetime
) -> Outcome:
    """A spec the operator cannot act on: say why once, and keep routing as it was."""
    already_said = (c := status.condition(READY)) is not None and c.message == message
    b = _Builder(status, generation, now)
    b.update(phase=Phase.FAILED)
    b.condition(READY, "False", reason, message)
    if not already_said:
        b.event("Warning", reason, message)
    return b.outcome()
