"""The LLMDeployment status: the operator's only state, so a restarted operator decides the same."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Text from outside the operator (API and Prometheus error bodies) is cut to this many characters
# where it enters status or an Event, so no answer can grow an object in etcd.
MAX_EXTERNAL_TEXT: Final = 256


def truncate(text: str, limit: int = MAX_EXTERNAL_TEXT) -> str:
    """`text` on one line, at most `limit` characters; an ellipsis says that something was cut."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Phase(StrEnum):
    IDLE = "Idle"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    FALLBACK_ACTIVE = "FallbackActive"
    FAILED = "Failed"


ConditionStatus = Literal["True", "False", "Unknown"]


class StatusModel(BaseModel):
    # Status is read back from the cluster, where Kopf and older operators may have left other keys.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class HistoryEntry(StatusModel):
    time: datetime
    reason: str
    message: str


MAX_HISTORY = 20


class FallbackStatus(StatusModel):
    """A serving version breached a hard SLO and its traffic went to a fallback."""

    failed: str = Field(description="The serving version that breached; it keeps a probe weight.")
    active: str = Field(description="The version now carrying the failed version's traffic.")
    tried: list[str] = Field(default_factory=list, description="Fallbacks that breached in this episode.")
    reason: str
    since: datetime
    healthy_intervals: int = Field(0, description="The failed version's healthy intervals in a row.")
    failback_step: int = Field(-1, description="Index into fallbackPolicy.failbackSteps; -1 while probing.")
    degraded: bool = Field(False, description="Every fallback breaches too; traffic is on the least bad.")
    resume_phase: Phase = Field(description="The phase to return to once traffic is back.")


class LLMDeploymentStatus(StatusModel):
    phase: Phase | None = None
    stable: str | None = Field(
        None, description="Variant now serving; differs from spec.stable after a promotion."
    )
    candidate: str | None = Field(None, description="Variant being rolled out, if any.")
    candidate_weight: int = Field(0, description="Candidate's traffic share in percent.")
    weights: dict[str, int] = Field(
        default_factory=dict, description="Traffic share of each variant in percent."
    )
    step: int = Field(0, description="Index of the current step in spec.strategy.steps.")
    spec_stable: str | None = Field(None, description="spec.stable when status.stable was last set.")
    step_started_at: datetime | None = Field(None, description="When the current step began.")
    last_analysis_at: datetime | None = Field(None, description="End of the last analysed window.")
    failed_checks: int = Field(0, description="Failed analyses in the current step.")
    inconclusive_checks: int = Field(0, description="Inconclusive analyses in a row.")
    step_requests: dict[str, float] = Field(
        default_factory=dict, description="Requests seen per version during the current step."
    )
    analysis: dict[str, Any] = Field(default_factory=dict, description="Last analysis per SLO and variant.")
    history: list[HistoryEntry] = Field(
        default_factory=list, description="The latest decisions, newest last."
    )
    fallback: FallbackStatus | None = Field(None, description="Set while a fallback carries traffic.")
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = None

    def condition(self, condition_type: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == condition_type), None)


def with_condition(
    conditions: list[Condition],
    condition_type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Conditions with one set; lastTransitionTime moves only when the status changes."""
    previous = next((c for c in conditions if c.type == condition_type), None)
    changed = previous is None or previous.status != status
    updated = Condition(
        type=condition_type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now if changed or previous is None else previous.last_transition_time,
        observed_generation=generation,
    )
    return (
        [updated if c.type == condition_type else c for c in conditions]
        if previous
        else [*conditions, updated]
    )
