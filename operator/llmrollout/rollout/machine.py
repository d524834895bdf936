"""The rollout state machine: spec + status + now -> next status and Events. Pure: no I/O."""

from __future__ import annotations

from datetime import datetime

from llmrollout.api import LLMDeploymentSpec, LLMDeploymentStatus, Phase, with_condition
from llmrollout.rollout.outcome import Event, Outcome

READY = "Ready"


def serving_stable(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> str:
    """The version serving now: spec.stable until a promotion names another in status."""
    if status.stable is not None and any(v.name == status.stable for v in spec.variants):
        return status.stable
    return spec.stable


def all_to(spec: LLMDeploymentSpec, serving: str) -> dict[str, int]:
    return {variant.name: 100 if variant.name == serving else 0 for variant in spec.variants}


def initialize(
    spec: LLMDeploymentSpec, status: LLMDeploymentStatus, generation: int | None, now: datetime
) -> Outcome:
    """Adopt an LLMDeployment: all traffic on the serving version until a rollout moves it."""
    stable = serving_stable(spec, status)
    candidate = spec.candidate if spec.candidate != stable else None
    weights = all_to(spec, stable)
    phase = status.phase if status.phase is not None and status.phase != Phase.FAILED else Phase.IDLE
    message = f"{stable} serves 100%"
    conditions = with_condition(status.conditions, READY, "True", "Reconciled", message, now, generation)
    next_status = status.model_copy(
        update={
            "phase": phase,
            "stable": stable,
            "candidate": candidate,
            "candidate_weight": weights.get(candidate, 0) if candidate else 0,
            "weights": weights,
            "conditions": conditions,
            "observed_generation": generation,
        }
    )
    first_time = status.phase is None or status.phase == Phase.FAILED
    events = [Event("Normal", "Initialized", f"{message}; phase {phase}")] if first_time else []
    return Outcome(next_status, events)


def reject(
    reason: str, message: str, status: LLMDeploymentStatus, generation: int | None, now: datetime
) -> Outcome:
    """A spec the operator cannot act on: say why, keep routing as it was."""
    conditions = with_condition(status.conditions, READY, "False", reason, message, now, generation)
    next_status = status.model_copy(
        update={"phase": Phase.FAILED, "conditions": conditions, "observed_generation": generation}
    )
    already_said = (c := status.condition(READY)) is not None and c.message == message
    return Outcome(next_status, [] if already_said else [Event("Warning", reason, message)])
