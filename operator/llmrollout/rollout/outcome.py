"""What a decision produces: the next status and the Events that explain it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from llmrollout.api import LLMDeploymentStatus


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    status: LLMDeploymentStatus
    events: list[Event] = field(default_factory=list)
