"""The rollout state machine: pure decisions from spec, status, observations and time."""

from llmrollout.rollout.builder import all_to
from llmrollout.rollout.fallback import watched
from llmrollout.rollout.machine import (
    Action,
    GateReport,
    Observation,
    Preflight,
    desired_candidate,
    due_window,
    gate_pending,
    reconcile,
    reject,
    serving_stable,
)
from llmrollout.rollout.outcome import Event, Outcome
from llmrollout.rollout.wake import next_wake

__all__ = [
    "Action",
    "Event",
    "GateReport",
    "Observation",
    "Outcome",
    "Preflight",
    "all_to",
    "desired_candidate",
    "due_window",
    "gate_pending",
    "next_wake",
    "reconcile",
    "reject",
    "serving_stable",
    "watched",
]
