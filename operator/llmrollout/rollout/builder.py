"""What every decision shares: the status being built, its Events, and weight arithmetic."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from llmrollout.api import MAX_HISTORY, HistoryEntry, LLMDeploymentSpec, LLMDeploymentStatus, with_condition
from llmrollout.rollout.outcome import Event, Outcome

READY = "Ready"
PROGRESSING = "Progressing"
METRICS = "MetricsAvailable"
FALLBACK = "FallbackActive"
DEGRADED = "Degraded"


def all_to(spec: LLMDeploymentSpec, serving: str) -> dict[str, int]:
    return {variant.name: 100 if variant.name == serving else 0 for variant in spec.variants}


def split(spec: LLMDeploymentSpec, stable: str, candidate: str, candidate_weight: int) -> dict[str, int]:
    weights = {variant.name: 0 for variant in spec.variants}
    weights[stable] = 100 - candidate_weight
    weights[candidate] = candidate_weight
    return weights


class Builder:
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
