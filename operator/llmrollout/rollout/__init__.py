"""The rollout state machine: pure decisions from spec, status, observations and time."""

from llmrollout.rollout.machine import initialize, reject, serving_stable
from llmrollout.rollout.outcome import Event, Outcome

__all__ = ["Event", "Outcome", "initialize", "reject", "serving_stable"]
