"""When an LLMDeployment next needs a reconcile, by tables: spec, status and now in, a time (or None,
idle) out. No I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from llmrollout.api import LLMDeploymentSpec, LLMDeploymentStatus, Phase, with_condition
from llmrollout.rollout import GateReport, Preflight, due_window, next_wake, reconcile, reject
from llmrollout.rollout.machine import look_interval
from tests.unit.rollout.windows import MINUTE, T0, Traffic, observe, spec

S = timedelta(seconds=1)
GOLDEN = {"goldenSet": {"configMapRef": {"name": "golden"}, "scorer": "exactMatch", "maxDropVsStable": 0.05}}


def routed(status: LLMDeploymentStatus) -> LLMDeploymentStatus:
    """What the handler adds once the decided weights are on the route."""
    conditions = with_condition(status.conditions, "TrafficRouted", "True", "WeightsSet", "", T0, 1)
    return status.model_copy(update={"conditions": conditions, "applied_weights": dict(status.weights)})


def idle(s: LLMDeploymentSpec) -> LLMDeploymentStatus:
    return routed(
        reconcile(s.model_copy(update={"candidate": None}), LLMDeploymentStatus(), 1, T0 - MINUTE).status
    )


def started(s: LLMDeploymentSpec, at: datetime = T0, **changes: Any) -> LLMDeploymentStatus:
    return routed(reconcile(s, idle(s), 2, at, **changes).status)


def test_a_deployment_never_reconciled_needs_one_now() -> None:
    assert next_wake(spec(), LLMDeploymentStatus(), T0) == T0


@pytest.mark.parametrize(
    ("name", "s", "status"),
    [
        ("no candidate, no fallbacks", spec(), idle),
        ("invalid spec", spec(), lambda s: reject("InvalidSpec", "bad", LLMDeploymentStatus(), 1, T0).status),
        (
            "paused",
            spec(candidate="v2", paused=True),
            lambda s: started(s.model_copy(update={"paused": False})),
        ),
    ],
)
def test_an_idle_deployment_has_no_wake(name: str, s: LLMDeploymentSpec, status: Any) -> None:
    current = status(s)
    if s.paused:
        current = routed(reconcile(s, current, 2, T0 + S).status)
        assert current.phase == Phase.PAUSED
    assert next_wake(s, current, T0 + 10 * MINUTE) is None, name


def test_a_finished_rollout_is_idle_until_the_spec_changes() -> None:
    s = spec(candidate="v2", strategy__steps=[50])
    status = started(s)
    for _ in range(3):
        now = T0 + MINUTE * (1 + _)
        due = due_window(s, status, now)
        if due is None:
            break
        status = routed(reconcile(s, status, 2, now, observe(*due, candidate=Traffic())).status)
    assert status.phase == Phase.PROMOTED
    assert next_wake(s, status, T0 + 10 * MINUTE) is None
    bad = Traffic(requests=400, errors=200)
    rolled = routed(
        reconcile(
            spec(candidate="v2"),
            started(spec(candidate="v2")),
            2,
            T0 + MINUTE,
            observe(T0, T0 + MINUTE, candidate=bad),
        ).status
    )
    assert rolled.phase == Phase.ROLLED_BACK
    assert next_wake(spec(candidate="v2"), rolled, T0 + 10 * MINUTE) is None


@pytest.mark.parametrize(
    ("method", "started_at", "now", "wake"),
    [
        ("threshold", 0, 0, 60),
        ("threshold", 0, 30, 60),
        ("threshold", 0, 60, 60),  # due now
        ("threshold", 0, 75, 75),  # overdue (a read in flight): now
        # 50 s: at 1m scrapes the last scrape read may come 51 s before the end, leaving nothing
        ("threshold", 10, 11, 120),
        ("threshold", 40, 41, 120),  # 20 s would be a sliver
        ("sequential", 0, 1, 30),
        ("sequential", 20, 21, 60),
        ("sequential", 14, 15, 60),
    ],
)
def test_a_rollout_wakes_at_its_next_look(method: str, started_at: int, now: int, wake: int) -> None:
    s = spec(candidate="v2", analysis__method=method)
    status = started(s, T0 + started_at * S)
    assert next_wake(s, status, T0 + now * S) == T0 + wake * S
    # Waking then finds its window due, ending on the latest boundary.
    due = due_window(s, status, T0 + wake * S)
    assert due is not None and due[1].timestamp() % look_interval(s).total_seconds() == 0


def test_fallbacks_wake_a_deployment_without_a_candidate_once_per_interval() -> None:
    s = spec(fallbacks=["hosted"])
    status = idle(s)
    assert status.last_analysis_at is not None
    assert next_wake(s, status, T0 - MINUTE + S) == T0
    assert next_wake(s, status, T0 + 10 * S) == T0 + 10 * S  # the window to T0 is due


def test_a_route_not_yet_carrying_the_decision_is_retried_soon() -> None:
    s = spec(candidate="v2")
    unrouted = reconcile(s, idle(s), 2, T0).status
    assert next_wake(s, unrouted, T0 + S) == T0 + 3 * S
    fast = spec(candidate="v2", strategy__interval="1s")
    assert next_wake(fast, reconcile(fast, idle(fast), 2, T0).status, T0) == T0 + S
    idle_unrouted = reconcile(spec(), LLMDeploymentStatus(), 1, T0).status
    assert next_wake(spec(), idle_unrouted, T0) == T0 + 2 * S


def test_a_golden_set_gate_is_polled_while_it_runs() -> None:
    s = spec(candidate="v2", analysis__method="sequential", evaluation=GOLDEN)
    evaluating = routed(reconcile(s, idle(s), 2, T0).status)
    assert evaluating.phase == Phase.EVALUATING
    assert next_wake(s, evaluating, T0 + S) == T0 + 2 * S
    progress = routed(reconcile(s, evaluating, 2, T0 + S, gate=GateReport("v2", done=3, total=9)).status)
    assert next_wake(s, progress, T0 + 2 * S) == T0 + 3 * S


def test_a_series_check_is_polled_while_it_runs_and_retried_each_scrape_while_series_are_missing() -> None:
    s = spec(candidate="v2", metrics__prometheus__scrapeInterval="15s")
    checking = routed(reconcile(s, idle(s), 2, T0, preflight=Preflight({}, checking=True)).status)
    assert checking.phase == Phase.IDLE
    assert next_wake(s, checking, T0 + S) == T0 + 2 * S
    missing = Preflight({"v1": {"errors": 'llm_requests_total{variant="v1"}'}})
    blocked = routed(reconcile(s, idle(s), 2, T0, preflight=missing).status)
    assert blocked.condition("MetricsReady").status == "False"  # type: ignore[union-attr]
    assert next_wake(s, blocked, T0 + 20 * S) == T0 + 30 * S


def test_a_new_candidate_during_a_fallback_waits_for_the_health_windows() -> None:
    s = spec(fallbacks=["hosted"])
    status = idle(s)
    broken = Traffic(requests=400, errors=200)
    due = due_window(s, status, T0)
    assert due is not None
    failed_over = routed(reconcile(s, status, 1, T0, observe(*due, stable=broken)).status)
    assert failed_over.fallback is not None
    with_candidate = s.model_copy(update={"candidate": "v2"})
    assert next_wake(with_candidate, failed_over, T0 + S) == T0 + MINUTE


@pytest.mark.parametrize(
    ("failing_for", "retry"),
    [(0, 2), (4, 2), (8, 2), (20, 5), (120, 30), (600, 60), (3600, 60)],
)
def test_a_route_or_service_missing_for_long_is_retried_less_often_up_to_an_interval(
    failing_for: int, retry: int
) -> None:
    s = spec()  # idle: nothing else wakes it
    conditions = with_condition(
        [], "TrafficRouted", "False", "ServiceNotFound", "Service bot-v1 not found", T0, 2
    )
    status = idle(s).model_copy(update={"conditions": conditions})
    now = T0 + failing_for * S
    assert next_wake(s, status, now) == now + retry * S
