"""The LLMDeployment status: the operator's only state, so a restarted operator decides the same."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Status lives in etcd (1.5 MiB per object) and is rewritten every look, so every part of it has a
# bound: text from outside the operator (API and Prometheus error bodies) is cut to MAX_EXTERNAL_TEXT
# where it enters, every message to MAX_MESSAGE, every list to a fixed length.
MAX_EXTERNAL_TEXT: Final = 256
MAX_MESSAGE: Final = 1024
MAX_REASON: Final = 128
MAX_CONDITIONS: Final = 16
MAX_VARIANT_KEYS: Final = 16  # spec.variants has at most 16 entries
TRAFFIC_ROUTED: Final = "TrafficRouted"


def truncate(text: str, limit: int = MAX_EXTERNAL_TEXT) -> str:
    """`text` on one line, at most `limit` characters; an ellipsis says that something was cut."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def truncate_middle(text: str, limit: int = MAX_EXTERNAL_TEXT) -> str:
    """Like truncate, but keeps the end too: API errors put the specific cause last (e.g. an
    admission policy's own message after the names of the policy and its binding)."""
    flat = " ".join(str(text).split())
    if len(flat) <= limit:
        return flat
    head = (limit - 1) // 3
    return flat[:head] + "…" + flat[len(flat) - (limit - 1 - head) :]


def _cap(limit: int) -> Any:
    # AfterValidator: a message over the bound is cut rather than refused, so a long decision
    # never makes the status write fail; maxLength in the CRD is the apiserver's backstop.
    return AfterValidator(lambda text: text if len(text) <= limit else truncate(text, limit))


Message = Annotated[str, _cap(MAX_MESSAGE), Field(max_length=MAX_MESSAGE)]
Reason = Annotated[str, _cap(MAX_REASON), Field(max_length=MAX_REASON)]


class Phase(StrEnum):
    IDLE = "Idle"
    EVALUATING = "Evaluating"  # a golden set runs against candidate and stable; no traffic moves
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
    type: str = Field(max_length=MAX_REASON)
    status: ConditionStatus
    reason: Reason
    message: Message = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class HistoryEntry(StatusModel):
    time: datetime
    reason: Reason
    message: Message


MAX_HISTORY = 20


class FallbackStatus(StatusModel):
    """A serving version breached a hard SLO and its traffic went to a fallback."""

    failed: str = Field(
        max_length=63, description="The serving version that breached; it keeps a probe weight."
    )
    active: str = Field(max_length=63, description="The version now carrying the failed version's traffic.")
    tried: list[str] = Field(
        default_factory=list,
        max_length=MAX_VARIANT_KEYS,
        description="Fallbacks that breached in this episode.",
    )
    reason: Message
    since: datetime
    healthy_intervals: int = Field(0, description="The failed version's healthy intervals in a row.")
    failback_step: int = Field(-1, description="Index into fallbackPolicy.failbackSteps; -1 while probing.")
    degraded: bool = Field(False, description="Every fallback breaches too; traffic is on the least bad.")
    resume_phase: Phase = Field(description="The phase to return to once traffic is back.")


class LLMDeploymentStatus(StatusModel):
    phase: Phase | None = None
    stable: str | None = Field(
        None, max_length=63, description="Variant now serving; differs from spec.stable after a promotion."
    )
    candidate: str | None = Field(None, max_length=63, description="Variant being rolled out, if any.")
    candidate_weight: int = Field(0, description="Candidate's traffic share in percent.")
    weights: dict[str, int] = Field(
        default_factory=dict,
        max_length=MAX_VARIANT_KEYS,
        description="Traffic share of each variant in percent.",
    )
    applied_weights: dict[str, int] = Field(
        default_factory=dict,
        max_length=MAX_VARIANT_KEYS,
        description="The weights last confirmed on the routing object. `weights` is written first"
        " (the decision), then the route, then this: a difference means the decision is still being"
        " applied, not that someone else changed the route.",
    )
    step: int = Field(0, description="Index of the current step in spec.strategy.steps.")
    spec_stable: str | None = Field(
        None, max_length=63, description="spec.stable when status.stable was last set."
    )
    step_started_at: datetime | None = Field(None, description="When the current step began.")
    rollout_started_at: datetime | None = Field(
        None, description="When the current rollout began; strategy.maxDuration counts from here."
    )
    last_analysis_at: datetime | None = Field(None, description="End of the last analysed window.")
    failed_checks: int = Field(0, description="Failed analyses in the current step.")
    inconclusive_checks: int = Field(0, description="Inconclusive analyses in a row.")
    step_requests: dict[str, float] = Field(
        default_factory=dict,
        max_length=MAX_VARIANT_KEYS,
        description="Requests seen per version during the current step.",
    )
    analysis: dict[str, Any] = Field(default_factory=dict, description="Last analysis per SLO and variant.")
    evaluation: dict[str, Any] = Field(
        default_factory=dict,
        description="The golden-set gate of the candidate: its progress, then its score, drop, n and worst"
        " item ids.",
    )
    plan: dict[str, Any] = Field(
        default_factory=dict,
        description="Per SLO: the canary requests and minutes a decision should take at the traffic seen,"
        " and the smallest regression the horizon can still catch.",
    )
    history: list[HistoryEntry] = Field(
        default_factory=list, max_length=MAX_HISTORY, description="The latest decisions, newest last."
    )
    fallback: FallbackStatus | None = Field(None, description="Set while a fallback carries traffic.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=MAX_CONDITIONS,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = None

    def condition(self, condition_type: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == condition_type), None)

    def weights_on_route(self) -> dict[str, int]:
        """The weights confirmed on the route; a status from before appliedWeights existed counts its
        weights as applied when TrafficRouted says so."""
        if self.applied_weights:
            return dict(self.applied_weights)
        routed = (c := self.condition(TRAFFIC_ROUTED)) is not None and c.status == "True"
        return dict(self.weights) if routed else {}


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
