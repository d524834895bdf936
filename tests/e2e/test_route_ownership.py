"""The operator changes only HTTPRoutes that are its to change: a foreign route that a spec names is
left untouched (its resourceVersion unchanged) with TrafficRouted=False/RouteNotOptedIn, until it
opts in with an annotation naming the LLMDeployment."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.cluster import Kube, wait_for
from tests.e2e.scenario import INTERVAL_SECONDS, NAME, PORT, llmdeployment, services_and_route

pytestmark = pytest.mark.usefixtures("gateway_api", "operator")

PAYMENTS: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "payments"},
    "spec": {
        "parentRefs": [{"name": "gateway"}],
        "rules": [{"backendRefs": [{"name": "payments", "port": 80, "weight": 100}]}],
    },
}


def traffic_condition(kube: Kube, namespace: str) -> dict[str, Any] | None:
    status = kube.get("llmd", NAME, namespace).get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] == "TrafficRouted"), None)


def test_a_foreign_route_is_left_untouched_until_it_opts_in(kube: Kube, namespace: str) -> None:
    for manifest in [*services_and_route(namespace)[:2], PAYMENTS]:
        assert kube.apply(manifest, namespace).returncode == 0
    before = kube.get("httproute", "payments", namespace)
    deployment = llmdeployment(namespace, "http://127.0.0.1:9", candidate=None)
    deployment["spec"]["traffic"]["httpRouteRef"]["name"] = "payments"
    assert kube.apply(deployment, namespace).returncode == 0

    condition = wait_for(
        lambda: (c := traffic_condition(kube, namespace)) and c["reason"] == "RouteNotOptedIn" and c,
        30,
        "TrafficRouted=False/RouteNotOptedIn",
    )
    assert condition["status"] == "False"
    assert f"HTTPRoute {namespace}/payments" in condition["message"]
    assert f"llmrollout.io/llmdeployment={NAME}" in condition["message"]
    time.sleep(3 * INTERVAL_SECONDS)  # several ticks and retries
    after = kube.get("httproute", "payments", namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"] == before["spec"]

    kube.kubectl("annotate", "httproute", "payments", "-n", namespace, f"llmrollout.io/llmdeployment={NAME}")
    wait_for(
        lambda: (c := traffic_condition(kube, namespace)) and c["status"] == "True",
        30,
        "TrafficRouted=True once the route opts in",
    )
    refs = kube.get("httproute", "payments", namespace)["spec"]["rules"][0]["backendRefs"]
    assert {"name": "payments", "port": 80, "weight": 100} in [
        {k: r[k] for k in ("name", "port", "weight")} for r in refs
    ]
    assert any(r["name"] == "bot-v1" and r["port"] == PORT and r["weight"] == 100 for r in refs), refs
