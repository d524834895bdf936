"""Rollouts read from one telemetry source (a preset and the exporter that feeds it): the setup the
test_rollout_{vllm,litellm,otel,openllmetry,litellm_proxy}.py files share.

`start_source_rollout` starts the simulated model servers, the Services and HTTPRoute, traffic that
follows the route (through `front`, when the requests pass an instrumented application or a proxy
first), and an LLMDeployment reading `metrics` from the session's Prometheus. `promote_and_roll_back`
runs the two scenarios every source must pass at once, each in its own namespace: a healthy candidate
is promoted; a candidate whose server errors rise is rolled back, naming errorRate.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from llmrollout.api import parse_duration
from tests.e2e.cluster import Kube, wait_for
from tests.e2e.harness.fixtures import ModelServers, ServerSpec, Traffic
from tests.e2e.harness.modelserver import ModelServer
from tests.e2e.harness.prometheus import PrometheusServer
from tests.e2e.scenario import NAME, SLOS, Rollout, llmdeployment, services_and_route

VARIANTS = ("v1", "v2")
ROLLBACK_STEPS = [20, 50, 80, 100]
# LiteLLM records TTFT for streamed calls only, and our judge's series carry `variant`, not
# requested_model: TTFT and quality are left out (a missing one would hold the rollout, naming it).
LITELLM_SLOS = {
    "errorRate": SLOS["errorRate"],
    "costPerRequest": SLOS["costPerRequest"],
    "latency": {"p95": "5s"},
}
# openai-v2 records no TTFT, and OpenLLMetry's default buckets (0, 5, 10, ... s) cannot resolve an
# 800 ms p95 (inconclusive, with advice): TTFT is left out. Quality comes from our judge's series.
OTEL_SLOS = {
    "errorRate": SLOS["errorRate"],
    "costPerRequest": SLOS["costPerRequest"],
    "quality": {"minScore": 0.7, "maxDropVsStable": 0.2},
}


@dataclass(frozen=True)
class Front:
    """Where the traffic of each Service goes when it does not go to the model server directly."""

    backends: Mapping[str, str]  # {Service name: base URL}
    models: Mapping[str, str] = field(default_factory=dict)  # {Service name: the request's model}
    headers: Mapping[str, str] = field(default_factory=dict)


# Given the namespace and the started servers ({Service name: server}), starts what stands in front of
# them (and registers its Prometheus targets); its cleanup is the caller's (see `closing`).
FrontFactory = Callable[[str, dict[str, ModelServer]], Front]


def start_source_rollout(
    env: Mapping[str, Any],
    *,
    servers: Mapping[str, ServerSpec],
    metrics: Mapping[str, Any],
    slos: Mapping[str, Any],
    front: FrontFactory | None = None,
    rate: float = 40.0,
    concurrency: int = 4,
    **llmd: Any,
) -> Rollout:
    """One rollout of v2 over v1 in env["namespace"]; `metrics` is spec.metrics beyond the Prometheus
    address, its scrape interval and the namespace label."""
    kube, namespace, prometheus = env["kube"], env["namespace"], env["prometheus"]
    started = env["model_servers"](namespace, dict(servers))
    routed = front(namespace, started) if front is not None else None
    for manifest in services_and_route(namespace):
        result = kube.apply(manifest, namespace)
        assert result.returncode == 0, result.stderr
    options: dict[str, Any] = {}
    if routed is not None:
        options = {"backends": routed.backends, "models": routed.models, "headers": routed.headers}
    generator = env["traffic"](
        namespace,
        NAME,
        rate=rate,
        concurrency=concurrency,
        duration=600,
        max_requests=10**6,
        seed=3,
        **options,
    )
    manifest = llmdeployment(namespace, prometheus.address, slos=dict(slos), **llmd)
    manifest["spec"]["metrics"] = {
        "prometheus": {"address": prometheus.address, "scrapeInterval": f"{prometheus.scrape_interval:g}s"},
        "labels": {"namespace": namespace},
        **metrics,
    }
    rollout = Rollout(kube, namespace, started, generator, manifest)
    rollout.apply(manifest)
    return rollout


def decision_timeout(rollout: Rollout) -> float:
    """Time for one decision at the rollout's analysis interval (generous: a busy machine is slow)."""
    interval = parse_duration(rollout.manifest["spec"]["strategy"]["interval"]).total_seconds()
    return 6 * interval + 10


def healthy_is_promoted(rollout: Rollout) -> dict[str, Any]:
    status = rollout.wait_phase("Promoted", 5 * decision_timeout(rollout))
    assert status["stable"] == "v2" and status["weights"] == {"v1": 0, "v2": 100}, status
    return status


def errors_roll_back(rollout: Rollout, **errors: Any) -> dict[str, Any]:
    """At the second step the candidate's server starts failing (`errors`: Behaviour changes)."""
    rollout.wait_step(ROLLBACK_STEPS[1], 3 * decision_timeout(rollout))
    rollout.candidate_server.configure(**errors)
    status = rollout.wait_phase("RolledBack", 4 * decision_timeout(rollout))
    wait_for(lambda: rollout.candidate_share() == 0, 10, "candidate at 0% in the HTTPRoute")
    assert status["weights"] == {"v1": 100, "v2": 0}, status
    rolled_back = wait_for(lambda: rollout.event_messages("RolledBack"), 30, "the RolledBack Event")
    assert "errorRate" in rolled_back[-1] and "on v2" in rolled_back[-1], rolled_back
    return status


def promote_and_roll_back(
    kube: Kube,
    prometheus: PrometheusServer,
    request: pytest.FixtureRequest,
    start: Callable[[Mapping[str, Any], bool], Rollout],
    errors: Mapping[str, Any],
) -> dict[str, float]:
    """Both scenarios at once, in namespaces of their own; returns the seconds each took.

    `start(env, rollback)` starts one rollout (`rollback`: with ROLLBACK_STEPS, for `errors_roll_back`).
    """
    cases = ("healthy", "errors")
    namespaces = {case: f"e2e-src-{case}-{uuid.uuid4().hex[:6]}" for case in cases}
    servers = {case: ModelServers(prometheus) for case in cases}
    traffic = {case: Traffic(request, servers[case]) for case in cases}
    for name in namespaces.values():
        kube.kubectl("create", "namespace", name)

    def run(case: str) -> float:
        began = time.monotonic()
        env = {
            "kube": kube,
            "namespace": namespaces[case],
            "prometheus": prometheus,
            "model_servers": servers[case],
            "traffic": traffic[case],
        }
        rollout = start(env, case == "errors")
        if case == "healthy":
            healthy_is_promoted(rollout)
        else:
            errors_roll_back(rollout, **errors)
        return time.monotonic() - began

    try:
        with ThreadPoolExecutor(len(cases)) as pool:
            seconds = dict(zip(cases, pool.map(run, cases), strict=True))
    finally:
        for case in cases:
            traffic[case].close()
            servers[case].close()
        for name in namespaces.values():
            kube.kubectl("delete", "namespace", name, "--wait=false", check=False)
    return seconds


__all__ = [
    "LITELLM_SLOS",
    "OTEL_SLOS",
    "ROLLBACK_STEPS",
    "VARIANTS",
    "Front",
    "FrontFactory",
    "decision_timeout",
    "errors_roll_back",
    "healthy_is_promoted",
    "promote_and_roll_back",
    "start_source_rollout",
]
