"""Rerouting to fallbacks by tables: failover, moving on, degraded routing, hysteresis, failback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from llmrollout.api import LLMDeploymentSpec, LLMDeploymentStatus, Phase
from llmrollout.rollout import Observation, Outcome, due_window, reconcile
from tests.unit.rollout.windows import HEALTHY, MINUTE, T0, Traffic, observe, spec

BROKEN = Traffic(requests=400, errors=200)  # 50% errors: beyond doubt over a 2% SLO
MARGINAL = Traffic(requests=100, errors=3)  # 3% over a 2% SLO: likely, not certain
NO_TRAFFIC = Traffic(requests=0, errors=0)
SLOW = Traffic(requests=400, errors=0, slow=200)


def protected(**changes: Any) -> LLMDeploymentSpec:
    """v1 serving, no candidate, fallbacks hosted then v2."""
    return spec(**{"fallbacks": ["hosted", "v2"], **changes})


def reasons(outcome: Outcome) -> list[str]:
    return [e.reason for e in outcome.events]


class Clock:
    """Feeds one health window per interval, with the given traffic per variant."""

    def __init__(self, s: LLMDeploymentSpec, status: LLMDeploymentStatus) -> None:
        self.spec = s
        self.status = status

    def window(self, **traffic: Traffic | None) -> Outcome:
        last = self.status.last_analysis_at or T0
        now = last + self.spec.strategy.interval
        due = due_window(self.spec, self.status, now)
        assert due is not None, f"no window due at {now} in phase {self.status.phase}"
        outcome = reconcile(self.spec, self.status, 1, now, self._observe(due, traffic))
        self.status = outcome.status
        return outcome

    def _observe(self, due: tuple[datetime, datetime], traffic: dict[str, Traffic | None]) -> Observation:
        if traffic.get("down") is not None:
            return Observation(*due, unavailable="Prometheus unreachable")
        stable = traffic.pop("v1", None) or HEALTHY
        candidate = traffic.pop("v2", None) or NO_TRAFFIC
        others = {name: t for name, t in traffic.items() if t is not None}
        return observe(*due, candidate=candidate, stable=stable, **others)


def idle(s: LLMDeploymentSpec | None = None) -> Clock:
    s = s or protected()
    return Clock(s, reconcile(s, LLMDeploymentStatus(), 1, T0).status)


def failed_over(s: LLMDeploymentSpec | None = None) -> tuple[Clock, Outcome]:
    clock = idle(s)
    outcome = clock.window(v1=BROKEN)
    assert clock.status.phase == Phase.FALLBACK_ACTIVE
    return clock, outcome


def test_health_is_watched_every_interval_only_when_there_are_fallbacks() -> None:
    assert due_window(protected(), idle().status, T0 + MINUTE) == (T0, T0 + MINUTE)
    assert due_window(protected(), idle().status, T0 + MINUTE / 2) is None
    assert due_window(spec(), idle(spec()).status, T0 + MINUTE * 5) is None


def test_a_hard_breach_beyond_doubt_moves_traffic_to_the_first_fallback() -> None:
    clock, outcome = failed_over()
    status = clock.status
    assert status.weights == {"v1": 5, "v2": 0, "hosted": 95}
    assert status.fallback is not None and (status.fallback.failed, status.fallback.active) == (
        "v1",
        "hosted",
    )
    assert reasons(outcome) == ["FallbackActivated"]
    message = outcome.events[0].message
    assert "errorRate 0.500 > 0.020 on v1 (n=400)" in message and "95% to hosted" in message
    condition = status.condition("FallbackActive")
    assert condition is not None and (condition.status, condition.reason) == ("True", "HardSLOBreached")


@pytest.mark.parametrize(
    ("stable", "why"),
    [
        (HEALTHY, "healthy"),
        (MARGINAL, "over the SLO, but not beyond doubt at n=100"),
        (Traffic(score=0.1), "quality is a soft SLO by default"),
        (Traffic(missing={"requests", "errors", "ttft"}), "no data is not a breach"),
    ],
)
def test_no_failover_without_a_certain_hard_breach(stable: Traffic, why: str) -> None:
    clock = idle()
    outcome = clock.window(v1=stable)
    assert clock.status.phase == Phase.IDLE and clock.status.fallback is None, why
    assert reasons(outcome) == []


def test_a_soft_slo_made_hard_triggers_failover() -> None:
    s = protected(slos={"errorRate": {"max": 0.02}, "quality": {"minScore": 0.8, "severity": "hard"}})
    clock = idle(s)
    clock.window(v1=Traffic(score=0.3))
    assert clock.status.phase == Phase.FALLBACK_ACTIVE


def test_a_failing_fallback_hands_over_to_the_next() -> None:
    clock, _ = failed_over()
    outcome = clock.window(v1=BROKEN, hosted=BROKEN)
    status = clock.status
    assert status.fallback is not None and status.fallback.active == "v2"
    assert status.weights == {"v1": 5, "v2": 95, "hosted": 0}
    assert reasons(outcome) == ["FallbackMoved"] and "on hosted" in outcome.events[0].message


def test_all_failing_keeps_the_least_bad_and_is_degraded() -> None:
    clock, _ = failed_over()
    clock.window(v1=BROKEN, hosted=Traffic(requests=400, errors=360))
    assert clock.status.fallback is not None and clock.status.fallback.active == "v2"
    outcome = clock.window(v1=BROKEN, v2=Traffic(requests=400, errors=300))
    status = clock.status
    assert reasons(outcome) == ["Degraded"]
    # v1 at 50% errors is less bad than v2 at 75%; hosted has no data left to judge it by.
    assert status.fallback is not None and status.fallback.degraded and status.fallback.active == "v1"
    assert status.weights == {"v1": 100, "v2": 0, "hosted": 0}
    degraded = status.condition("Degraded")
    assert degraded is not None and degraded.status == "True" and "least bad: v1" in degraded.message


def test_without_unknown_fallbacks_accepted_a_failover_with_no_known_good_fallback_is_degraded() -> None:
    clock = idle(protected(fallbackPolicy={"acceptUnknown": False}))
    outcome = clock.window(v1=BROKEN)
    assert reasons(outcome) == ["FallbackActivated", "Degraded"]
    assert clock.status.weights == {"v1": 100, "v2": 0, "hosted": 0}


def test_recovery_needs_consecutive_healthy_intervals_then_returns_in_steps() -> None:
    clock, _ = failed_over()
    shares = []
    events: list[str] = []
    for _ in range(7):
        outcome = clock.window(v1=HEALTHY, hosted=HEALTHY)
        shares.append(clock.status.weights["v1"])
        events += reasons(outcome)
        if clock.status.fallback is None:
            break
    # Three healthy intervals of hysteresis (the third starts failback), then 25 -> 50 -> 100.
    assert shares == [5, 5, 25, 50, 100]
    assert events == ["FailbackStarted", "FailedBack"]
    assert clock.status.phase == Phase.IDLE and clock.status.weights == {"v1": 100, "v2": 0, "hosted": 0}


@pytest.mark.parametrize("unhealthy", [BROKEN, MARGINAL], ids=["breach", "likely-breach"])
def test_a_flapping_version_does_not_make_weights_flap(unhealthy: Traffic) -> None:
    clock, _ = failed_over()
    seen = set()
    for interval in range(12):
        clock.window(v1=HEALTHY if interval % 2 else unhealthy, hosted=HEALTHY)
        seen.add(tuple(sorted(clock.status.weights.items())))
    assert seen == {(("hosted", 95), ("v1", 5), ("v2", 0))}


def test_intervals_without_probe_data_neither_recover_nor_relapse() -> None:
    clock, _ = failed_over()
    clock.window(v1=HEALTHY, hosted=HEALTHY)
    clock.window(v1=NO_TRAFFIC, hosted=HEALTHY)
    assert clock.status.fallback is not None and clock.status.fallback.healthy_intervals == 1


def test_a_breach_during_failback_returns_to_probing() -> None:
    clock, _ = failed_over()
    for _ in range(4):
        clock.window(v1=HEALTHY, hosted=HEALTHY)
    assert clock.status.weights["v1"] == 50
    outcome = clock.window(v1=BROKEN, hosted=HEALTHY)
    assert reasons(outcome) == ["FailbackHalted"] and clock.status.weights["v1"] == 5
    assert clock.status.fallback is not None and clock.status.fallback.healthy_intervals == 0


def test_metrics_outage_during_fallback_holds_everything() -> None:
    clock, _ = failed_over()
    before = clock.status.weights
    clock.window(down=HEALTHY)
    assert clock.status.weights == before and clock.status.phase == Phase.FALLBACK_ACTIVE
    metrics = clock.status.condition("MetricsAvailable")
    assert metrics is not None and metrics.status == "False"


def test_a_user_can_force_failback() -> None:
    clock, _ = failed_over()
    outcome = reconcile(clock.spec, clock.status, 1, T0 + MINUTE * 3, action="failback")
    assert outcome.status.phase == Phase.IDLE and outcome.status.weights["v1"] == 100
    assert reasons(outcome) == ["FailedBack"] and "forced by a user" in outcome.events[0].message


def test_a_rollout_pauses_during_the_outage_and_resumes_from_the_same_step() -> None:
    s = protected(candidate="v2", fallbacks=["hosted"])
    status = reconcile(s, LLMDeploymentStatus(), 1, T0).status
    clock = Clock(s, status)
    clock.window(v2=HEALTHY)  # the rollout's first look, at the sequential/threshold cadence
    assert (clock.status.phase, clock.status.step, clock.status.candidate_weight) == (
        Phase.PROGRESSING,
        1,
        25,
    )
    clock.window(v1=BROKEN, v2=HEALTHY)
    assert clock.status.phase == Phase.FALLBACK_ACTIVE
    assert clock.status.weights == {"v1": 5, "v2": 0, "hosted": 95}
    assert clock.status.fallback is not None and clock.status.fallback.resume_phase == Phase.PROGRESSING
    deferred = reconcile(s, clock.status, 1, T0 + MINUTE * 2, action="promote")
    assert reasons(deferred) == ["ActionDeferred"] and deferred.status.phase == Phase.FALLBACK_ACTIVE
    for _ in range(5):
        outcome = clock.window(v1=HEALTHY, hosted=HEALTHY)
    assert reasons(outcome) == ["FailedBack"] and "resumes at 25%" in outcome.events[0].message
    assert (clock.status.phase, clock.status.step, clock.status.weights) == (
        Phase.PROGRESSING,
        1,
        {"v1": 75, "v2": 25, "hosted": 0},
    )
    clock.window(v2=HEALTHY)
    assert clock.status.step == 2  # the rollout carries on from where it was
