"""When an LLMDeployment next needs a reconcile: pure, from spec, status and now.

A scheduler wakes each object at this time (or earlier, when the object or its annotations change);
between wakes an object costs nothing. Everything the state machine decides by time happens at a
look (a step's minimum duration, maxStepDuration, the horizon strategy.maxDuration are all checked
when a window is analysed), so the next look is the next wake for them; waking in between would find
no window due and change nothing. Work that runs off the reconcile thread (a golden-set gate, a
series check before a rollout) is polled while it runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from llmrollout.api import TRAFFIC_ROUTED, LLMDeploymentSpec, LLMDeploymentStatus, Phase
from llmrollout.rollout.builder import PROGRESSING
from llmrollout.rollout.machine import (
    METRICS_READY,
    boundary,
    desired_candidate,
    gate_pending,
    next_window_end,
    shortest_window,
    window_cadence,
)

# How soon work in flight (a golden-set run, a series check) is asked again.
POLL: Final = timedelta(seconds=1)
# A route or Service that is missing, or a route write that failed: asked again this soon, then less
# often the longer it lasts (a quarter of its age), up to one interval: a route created just after
# the LLMDeployment is picked up quickly, and one missing for good costs one reconcile an interval.
ROUTE_RETRY: Final = timedelta(seconds=2)


def next_wake(spec: LLMDeploymentSpec, status: LLMDeploymentStatus, now: datetime) -> datetime | None:
    """When this object next needs a reconcile; `now` when it needs one already (a window is due);
    None when it is idle: only a change to it (spec, annotations, status written by others) can give
    it something to do."""
    if status.phase is None:
        return now  # never reconciled
    if status.phase == Phase.FAILED:
        return None  # an invalid spec: only a spec change helps
    wakes: list[datetime] = []
    if not _route_settled(status):
        wakes.append(now + _route_retry(spec, status, now))
    cadence = window_cadence(spec, status)
    if cadence is not None and status.last_analysis_at is not None:
        shortest = shortest_window(spec, cadence)
        wakes.append(next_window_end(status.last_analysis_at, cadence, shortest, now))
    start = _start_pending(spec, status, now)
    if start is not None:
        wakes.append(start)
    return min(wakes, default=None)


def _route_retry(spec: LLMDeploymentSpec, status: LLMDeploymentStatus, now: datetime) -> timedelta:
    routed = status.condition(TRAFFIC_ROUTED)
    if routed is None or routed.status == "True":
        return min(ROUTE_RETRY, spec.strategy.interval)  # a decision not yet on the route: finish it
    failing_for = now - routed.last_transition_time
    return min(spec.strategy.interval, max(ROUTE_RETRY, failing_for / 4))


def _route_settled(status: LLMDeploymentStatus) -> bool:
    """The decided weights are confirmed on the route."""
    routed = status.condition(TRAFFIC_ROUTED)
    return routed is not None and routed.status == "True" and status.weights_on_route() == status.weights


def _start_pending(spec: LLMDeploymentSpec, status: LLMDeploymentStatus, now: datetime) -> datetime | None:
    """A new candidate waits for its golden set or for its series: when to ask again."""
    if status.fallback is not None:
        return None  # a new candidate waits until traffic is back; the health windows wake it
    candidate = desired_candidate(spec, status)
    if candidate is None or candidate == status.candidate:
        return None
    if gate_pending(spec, status) is not None:
        return now + POLL
    ready = status.condition(METRICS_READY)
    progressing = status.condition(PROGRESSING)
    blocked = (
        ready is not None
        and ready.status == "False"
        and progressing is not None
        and progressing.reason == "WaitingForMetrics"
        and spec.metrics.prometheus is not None
    )
    if blocked:
        assert spec.metrics.prometheus is not None
        # Only a new scrape can find what this check lacked: ask again once per scrape interval.
        scrape = max(spec.metrics.prometheus.scrape_interval, timedelta(seconds=1))
        return boundary(now, scrape) + scrape
    return now + POLL
