"""Bounded writes, by tables: a look that changes only evidence is kept in memory until an interval's
worth has gathered; anything that matters (a decision, the phase, weights, a condition's status or
reason, counters) is written at once. No apiserver: a deferred write never calls it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from llmrollout.api import LLMDeploymentStatus, Phase, with_condition
from llmrollout.handlers import reconciler
from llmrollout.handlers.reconciler import _StatusWriter, decision_state

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)
INTERVAL = 60.0


def persisted() -> LLMDeploymentStatus:
    conditions = with_condition([], "MetricsAvailable", "True", "MetricsRead", "read window ending T0", T0, 2)
    conditions = with_condition(conditions, "Progressing", "True", "WarmingUp", "holding v2 at 5%", T0, 2)
    return LLMDeploymentStatus(
        phase=Phase.PROGRESSING,
        candidate="v2",
        candidate_weight=5,
        weights={"v1": 95, "v2": 5},
        applied_weights={"v1": 95, "v2": 5},
        last_analysis_at=T0,
        step_requests={"v1": 100.0, "v2": 5.0},
        analysis={"verdict": "Inconclusive", "sequential": {"looks": 1}},
        conditions=conditions,
        observed_generation=2,
    )


def look(after: timedelta, **changes: object) -> LLMDeploymentStatus:
    """A later look's status: more evidence, reworded conditions, plus `changes`."""
    base = persisted()
    conditions = with_condition(
        base.conditions,
        "MetricsAvailable",
        "True",
        "MetricsRead",
        f"read window ending {after}",
        T0 + after,
        2,
    )
    return base.model_copy(
        update={
            "last_analysis_at": T0 + after,
            "step_requests": {"v1": 200.0, "v2": 10.0},
            "analysis": {"verdict": "Inconclusive", "sequential": {"looks": 2}},
            "plan": {"summary": "errorRate: ~300 canary requests"},
            "conditions": conditions,
            **changes,
        }
    )


def reason(status: LLMDeploymentStatus, reason: str) -> LLMDeploymentStatus:
    return status.model_copy(
        update={"conditions": with_condition(status.conditions, "Progressing", "True", reason, "m", T0, 2)}
    )


def writer() -> _StatusWriter:
    # No API client: a deferred write must never reach the apiserver.
    return _StatusWriter(None, "ns", "name", "7", persisted(), INTERVAL)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "decided", "deferred"),
    [
        ("evidence of half an interval", lambda: look(30 * S), True),
        ("evidence just short of an interval", lambda: look(59 * S), True),
        ("an interval's worth of evidence", lambda: look(60 * S), False),
        ("a step", lambda: look(30 * S, step=1, candidate_weight=25, weights={"v1": 75, "v2": 25}), False),
        ("the phase", lambda: look(30 * S, phase=Phase.ROLLED_BACK), False),
        ("an inconclusive count", lambda: look(30 * S, inconclusive_checks=1), False),
        ("a condition's reason", lambda: reason(look(30 * S), "GatheringEvidence"), False),
        ("a condition's wording only", lambda: look(30 * S), True),
        ("a new generation seen", lambda: look(30 * S, observed_generation=3), False),
        ("the applied weights", lambda: look(30 * S, applied_weights={"v1": 100, "v2": 0}), False),
    ],
)
def test_only_evidence_within_an_interval_is_deferred(
    name: str, decided: Callable[[], LLMDeploymentStatus], deferred: bool
) -> None:
    w = writer()
    assert w._deferrable(decided()) == deferred, name
    if deferred:
        w.write(decided())
        result = w.result()
        assert result.unwritten == decided() and result.written is None and result.resource_version == "7"
        assert w.status == decided()


def test_a_forced_write_is_never_deferred(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Event says a decision: it is written before the Event is posted, whatever changed."""
    writes: list[dict[str, object]] = []

    def write_status(api: object, namespace: str, name: str, version: str, body: dict[str, object]) -> object:
        writes.append(body)
        return {"metadata": {"resourceVersion": "8"}, "status": body}

    monkeypatch.setattr(reconciler, "write_status", write_status)
    w = writer()
    w.write(look(30 * S), force=True)
    assert len(writes) == 1 and w.result().unwritten is None and w.result().resource_version == "8"
    w.write(look(30 * S))  # the same again: nothing to write
    assert len(writes) == 1


def test_nothing_to_write_leaves_nothing_unwritten() -> None:
    w = writer()
    w.write(persisted())
    assert w.result().unwritten is None


def test_the_decision_state_ignores_wording_and_evidence_only() -> None:
    assert decision_state(look(30 * S)) == decision_state(persisted())
    assert decision_state(reason(persisted(), "Inconclusive")) != decision_state(persisted())
