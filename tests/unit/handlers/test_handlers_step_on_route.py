"""A step's time and requests count from when its weights reached the route, by a table over
_apply_route with a recording router and no apiserver: a step decided by a reconcile that died before
its route write begins at the reconcile that applies it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmrollout import rollout
from llmrollout.api import LLMDeploymentStatus, Phase
from llmrollout.handlers import reconciler
from llmrollout.handlers.reconciler import _apply_route, _StatusWriter

DECIDED = datetime(2026, 1, 1, tzinfo=UTC)
LATER = DECIDED + timedelta(seconds=90)  # the operator restarted in between
BEFORE = {"v1": 90, "v2": 10}
STEP = {"v1": 80, "v2": 20}


class RecordingRouter:
    def __init__(self) -> None:
        self.sent: list[dict[str, int]] = []

    def read_weights(self) -> dict[str, int]:
        return self.sent[-1] if self.sent else {}

    def set_weights(self, weights: Mapping[str, int]) -> None:
        self.sent.append(dict(weights))


def decided_step(applied: dict[str, int]) -> LLMDeploymentStatus:
    return LLMDeploymentStatus(
        phase=Phase.PROGRESSING,
        candidate="v2",
        candidate_weight=20,
        step=1,
        weights=STEP,
        applied_weights=applied,
        step_started_at=DECIDED,
        step_requests={"v1": 40.0, "v2": 4.0},
        observed_generation=2,
    )


@pytest.mark.parametrize(
    ("name", "applied", "on_route", "now", "started", "requests_kept"),
    [
        ("decided and applied by one reconcile", BEFORE, BEFORE, DECIDED, DECIDED, True),
        ("decided, then the operator died before the route write", BEFORE, BEFORE, LATER, LATER, False),
        ("died after the route write: the step began then", BEFORE, STEP, LATER, DECIDED, True),
        ("drift restored: the step had begun", STEP, {"v1": 50, "v2": 50}, LATER, DECIDED, True),
    ],
)
def test_a_step_begins_when_its_weights_reach_the_route(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    applied: dict[str, int],
    on_route: dict[str, int],
    now: datetime,
    started: datetime,
    requests_kept: bool,
) -> None:
    written: list[dict[str, Any]] = []

    def write_status(api: object, namespace: str, name: str, version: str, body: dict[str, Any]) -> object:
        written.append(body)
        return {"metadata": {"resourceVersion": str(8 + len(written))}, "status": body}

    monkeypatch.setattr(reconciler, "write_status", write_status)
    status = decided_step(applied)
    writer = _StatusWriter(None, "ns", "d", "7", status, 60.0)  # type: ignore[arg-type]
    router = RecordingRouter()
    outcome = rollout.Outcome(status)
    _apply_route(writer, router, dict(on_route), applied, outcome, now, lambda _: None, None)
    assert router.sent == ([] if on_route == STEP else [STEP]), name
    assert writer.status.applied_weights == STEP, name
    assert writer.status.step_started_at == started, name
    assert writer.status.step_requests == (status.step_requests if requests_kept else {}), name
    assert written and written[-1]["appliedWeights"] == STEP, name
