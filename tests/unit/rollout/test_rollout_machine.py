"""The state machine's adoption and refusal of a spec, by tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmrollout.api import LLMDeploymentStatus, Phase, parse_spec
from llmrollout.rollout import initialize, reject, serving_stable

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def spec(**changes: Any) -> Any:
    raw = yaml.safe_load((REPO / "examples/basic.yaml").read_text())["spec"]
    raw.update(changes)
    return parse_spec(raw)


@pytest.mark.parametrize(
    ("status_stable", "expected"),
    [(None, "v1"), ("v2", "v2"), ("removed-variant", "v1")],
)
def test_serving_stable(status_stable: str | None, expected: str) -> None:
    assert serving_stable(spec(), LLMDeploymentStatus(stable=status_stable)) == expected


def test_initialize_sends_everything_to_stable_and_says_so_once() -> None:
    first = initialize(spec(), LLMDeploymentStatus(), 1, NOW)
    assert first.status.phase == Phase.IDLE
    assert first.status.weights == {"v1": 100, "v2": 0, "hosted": 0}
    assert first.status.observed_generation == 1
    assert [(e.type, e.reason) for e in first.events] == [("Normal", "Initialized")]
    ready = first.status.condition("Ready")
    assert ready is not None and (ready.status, ready.last_transition_time) == ("True", NOW)

    again = initialize(spec(), first.status, 2, NOW + timedelta(minutes=1))
    assert again.events == []
    ready = again.status.condition("Ready")
    assert ready is not None and ready.last_transition_time == NOW  # no transition, time kept
    assert again.status.observed_generation == 2


def test_initialize_after_promotion_keeps_the_promoted_stable() -> None:
    outcome = initialize(spec(), LLMDeploymentStatus(phase=Phase.PROMOTED, stable="v2"), 3, NOW)
    assert outcome.status.weights == {"v1": 0, "v2": 100, "hosted": 0}
    assert outcome.status.phase == Phase.PROMOTED


def test_reject_then_recover() -> None:
    rejected = reject("InvalidSpec", "spec.x: bad", LLMDeploymentStatus(), 4, NOW)
    assert rejected.status.phase == Phase.FAILED
    ready = rejected.status.condition("Ready")
    assert ready is not None and (ready.status, ready.reason) == ("False", "InvalidSpec")
    assert [e.type for e in rejected.events] == ["Warning"]
    assert reject("InvalidSpec", "spec.x: bad", rejected.status, 4, NOW).events == []

    recovered = initialize(spec(), rejected.status, 5, NOW)
    assert recovered.status.phase == Phase.IDLE
    assert [e.reason for e in recovered.events] == ["Initialized"]
