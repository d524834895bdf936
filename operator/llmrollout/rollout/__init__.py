"""The rollout state machine: pure decisions from spec, status, observations and time."""

from llmrollout.rollout.builder import all_to
from llmrollout.rollout.fallback import watched
from llmrollout.rollout.machine import (
    Action,
    GateReport,
    Observation,
    checked_variants,
    desired_candidate,
    due_window,
    gate_pending,
    reconcile,
    reject,
    serving_stable,
    window_fields,
)
from llmrollout.rollout.outcome import Event, Outcome
from llmrollout.rollout.preflight import MetricsReport, Preflight, metrics_report
from llmrollout.rollout.wake import next_wake

__all__ = [
    "Action",
    "Event",
    "GateReport",
    "MetricsReport",
    "Observation",
    "Outcome",
    "Preflight",
    "all_to",
    "checked_variants",
    "desired_candidate",
    "due_window",
    "gate_pending",
    "metrics_report",
    "next_wake",
    "reconcile",
    "reject",
    "serving_stable",
    "watched",
    "window_fields",
]
