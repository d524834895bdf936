"""A step's time and requests count from when its weights reached the route, by a table over
_decide_and_route with a recording router and no apiserver: a step decided by a reconcile that died before
its route write begins at the reconcile that applies it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmrollout import rollout
from llmrollout.api import LLMDeploymentStatus, Phase
from llmrollout.handlers import reconciler
from llmrollout.handlers.reconciler import _decide_and_route, _StatusWriter

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


def recording(written: list[dict[str, Any]]) -> Callable[..., object]:
    def write_status(api: object, namespace: str, name: str, version: str, body: dict[str, Any]) -> object:
        written.append(body)
        return {"metadata": {"resourceVersion": str(8 + len(written))}, "status": body}

    return write_status


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
    monkeypatch.setattr(reconciler, "write_status", recording(written))
    status = decided_step(applied)
    writer = _StatusWriter(None, "ns", "d", "7", status, 60.0)  # type: ignore[arg-type]
    router = RecordingRouter()
    outcome = rollout.Outcome(status)
    _decide_and_route(writer, router, dict(on_route), applied, outcome, now, lambda _: None, None)
    assert router.sent == ([] if on_route == STEP else [STEP]), name
    assert writer.status.applied_weights == STEP, name
    assert writer.status.step_started_at == started, name
    assert writer.status.step_requests == (status.step_requests if requests_kept else {}), name
    assert written and written[-1]["appliedWeights"] == STEP, name


@pytest.mark.parametrize(
    ("name", "on_route", "applied_per_write", "sent"),
    [
        # The decision first, still recording the old weights as applied; then the route; then them.
        ("the route moves", BEFORE, [BEFORE, STEP], [STEP]),
        # Router none (its route is whatever is decided), or the route carries the step already.
        ("the route carries the decision", STEP, [STEP], []),
    ],
)
def test_the_decision_is_written_before_the_route_moves_and_only_once_when_nothing_moves(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    on_route: dict[str, int],
    applied_per_write: list[dict[str, int]],
    sent: list[dict[str, int]],
) -> None:
    written: list[dict[str, Any]] = []
    monkeypatch.setattr(reconciler, "write_status", recording(written))
    before = decided_step(BEFORE).model_copy(
        update={"step": 0, "candidate_weight": 10, "weights": BEFORE, "step_started_at": DECIDED}
    )
    writer = _StatusWriter(None, "ns", "d", "7", before, 60.0)  # type: ignore[arg-type]
    router = RecordingRouter()
    router.sent.append(dict(on_route))
    decided = decided_step(BEFORE).model_copy(update={"step_started_at": LATER})
    outcome = rollout.Outcome(decided, [rollout.Event("Normal", "StepAdvanced", "v2 to 20%")])
    _decide_and_route(writer, router, dict(on_route), BEFORE, outcome, LATER, lambda _: None, None)
    assert [body["weights"] for body in written] == [STEP] * len(applied_per_write), name
    assert [body["appliedWeights"] for body in written] == applied_per_write, name
    assert router.sent[1:] == sent, name
    routed = [c for c in written[-1]["conditions"] if c["type"] == "TrafficRouted"]
    assert [c["status"] for c in routed] == ["True"], name
