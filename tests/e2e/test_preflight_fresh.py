"""A new LLMDeployment checked right after Prometheus's first scrape of its servers.

The servers' series exist from that scrape on (at 0: no request yet, so no counter has moved), so the
check at creation must find every one of them: no MetricsReady=False, no RolloutBlocked Event, and the
rollout starts on the first check.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.cluster import Kube, wait_for
from tests.e2e.harness.fixtures import ModelServers
from tests.e2e.harness.prometheus import PrometheusServer
from tests.e2e.scenario import NAME, llmdeployment, services_and_route

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("gateway_api", "operator")]

SLOS = {"errorRate": {"max": 0.05}, "ttft": {"p95": "800ms"}}


def _events(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    listing = kube.kubectl(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={NAME}", "-o", "json"
    )
    items: list[dict[str, Any]] = json.loads(listing.stdout)["items"]
    return items


@pytest.mark.timeout(180)
def test_series_scraped_a_moment_before_creation_are_found(
    kube: Kube, namespace: str, prometheus: PrometheusServer, model_servers: ModelServers
) -> None:
    for manifest in services_and_route(namespace):
        result = kube.apply(manifest, namespace)
        assert result.returncode == 0, result.stderr
    # Returns as soon as Prometheus holds its first scrape of both servers: their series are then
    # well under one scrape interval old when the LLMDeployment is created and first checked.
    model_servers(namespace, {"bot-v1": "v1", "bot-v2": "v2"})
    manifest = llmdeployment(
        namespace, prometheus.address, slos=SLOS, scrape_interval=f"{prometheus.scrape_interval:g}s"
    )
    result = kube.apply(manifest, namespace)
    assert result.returncode == 0, result.stderr

    def started() -> dict[str, Any] | None:
        status: dict[str, Any] = kube.get("llmd", NAME, namespace).get("status", {})
        return status if status.get("candidate") == "v2" else None

    status = wait_for(started, 60.0, "the rollout of v2 to start")
    # Kopf posts Events asynchronously: wait for the RolloutStarted one, by then any earlier are posted.
    events = wait_for(
        lambda: (e := _events(kube, namespace)) and any(x["reason"] == "RolloutStarted" for x in e) and e,
        30.0,
        "the RolloutStarted Event",
    )
    blocked = [e["message"] for e in events if e["reason"] == "RolloutBlocked"]
    assert blocked == [], blocked
    ready = next(c for c in status["conditions"] if c["type"] == "MetricsReady")
    assert (ready["status"], ready["reason"]) == ("True", "SeriesFound"), ready
    assert ready["message"] == "every SLO's series found on v1", ready
