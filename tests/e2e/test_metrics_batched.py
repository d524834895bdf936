"""Batched metric reads against the real Prometheus and the real cluster.

- Two namespaces, the same variant names, different label values: in one batch, each LLMDeployment
  reads only its own series (the healthy one promotes, the failing one rolls back, and each status
  shows its own exporter's error rate).
- Six LLMDeployments' windows read batched and each alone from the same Prometheus data give equal
  Windows, so the decisions made from them are the same.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmrollout.metrics import PRESETS
from llmrollout.metrics.batch import BatchMember, read_batch
from llmrollout.metrics.factory import INGESTION_DELAY_SECONDS
from llmrollout.metrics.prometheus import PrometheusProvider
from tests.e2e.cluster import Kube, wait_for
from tests.e2e.harness.fixtures import ModelServers, ServerSpec, Traffic
from tests.e2e.harness.modelserver import Behaviour
from tests.e2e.harness.prometheus import PrometheusServer
from tests.e2e.scenario import INTERVAL_SECONDS, NAME, llmdeployment, services_and_route

pytestmark = pytest.mark.usefixtures("gateway_api", "operator")

# Label values that are regex and PromQL syntax: a union selector must match each only as itself.
APPS = ["tenant.a", "tenant|b", ".*", 'q"uote', "back\\slash", "(paren)"]


@pytest.fixture
def second_namespace(kube: Kube, namespace: str) -> Iterator[str]:
    name = f"{namespace[:50]}-b{uuid.uuid4().hex[:4]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _errors_seen(kube: Kube, namespace: str, seen: dict[str, list[float]]) -> str | None:
    status: dict[str, Any] = kube.get("llmd", NAME, namespace).get("status", {})
    for result in status.get("analysis", {}).get("results", []):
        if result.get("slo") == "errorRate" and result.get("value") is not None:
            seen.setdefault(result["variant"], []).append(float(result["value"]))
    phase: str | None = status.get("phase")
    return phase


def test_two_namespaces_with_the_same_variants_each_read_only_their_own_series(
    kube: Kube,
    namespace: str,
    second_namespace: str,
    prometheus: PrometheusServer,
    model_servers: ModelServers,
    traffic: Traffic,
) -> None:
    healthy, failing = namespace, second_namespace
    apps = {healthy: "tenant.a", failing: "tenant|b"}
    behaviours = {healthy: Behaviour(), failing: Behaviour(error_rate=0.5)}
    for ns in (healthy, failing):
        prefix = "a" if ns == healthy else "b"
        servers = model_servers(
            ns,
            {
                f"{prefix}-bot-v1": ServerSpec("v1", labels={"app": apps[ns]}, seed=1),
                f"{prefix}-bot-v2": ServerSpec(
                    "v2", behaviour=behaviours[ns], labels={"app": apps[ns]}, seed=2
                ),
            },
        )
        for manifest in services_and_route(ns):
            assert kube.apply(manifest, ns).returncode == 0
        backends = {f"bot-{v}": servers[f"{prefix}-bot-{v}"].url for v in ("v1", "v2")}
        traffic(ns, NAME, backends=backends, rate=30, duration=600, max_requests=10**6, seed=3)
    for ns in (healthy, failing):
        manifest = llmdeployment(ns, prometheus.address, scrape_interval=f"{prometheus.scrape_interval:g}s")
        # Same label key for both (one batch), different values; the namespace label is not used.
        manifest["spec"]["metrics"]["labels"] = {"app": apps[ns]}
        assert kube.apply(manifest, ns).returncode == 0

    seen: dict[str, dict[str, list[float]]] = {healthy: {}, failing: {}}
    timeout = 5 * (6 * INTERVAL_SECONDS + 10)

    def done() -> bool:
        phases = {ns: _errors_seen(kube, ns, seen[ns]) for ns in (healthy, failing)}
        return phases[healthy] == "Promoted" and phases[failing] == "RolledBack"

    wait_for(done, timeout, "the healthy one promoted and the failing one rolled back", interval=0.5)
    # Each status shows its own exporter: not one error ever in the healthy namespace's numbers
    # (the other's candidate fails half its requests), its own errors in the failing one's, and
    # its stable version clean. A look's window may hold only a few of the candidate's requests, so
    # its share of failures can be far from half (1 of 9 in one run); any failure shows whose it is.
    assert seen[healthy].get("v2") and max(seen[healthy]["v2"]) == 0.0, seen
    assert max(seen[healthy].get("v1", [0.0])) == 0.0, seen
    assert seen[failing].get("v2") and max(seen[failing]["v2"]) > 0.0, seen
    assert max(seen[failing].get("v1", [0.0])) == 0.0, seen
    status = kube.get("llmd", NAME, failing)["status"]
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "SLOBreached" and "errorRate" in progressing["message"]


def test_batched_windows_equal_each_deployments_own_read(
    namespace: str, prometheus: PrometheusServer, model_servers: ModelServers, traffic: Traffic
) -> None:
    behaviours = [
        Behaviour(),
        Behaviour(error_rate=0.3),
        Behaviour(ttft_median_s=0.6),
        Behaviour(output_tokens=900.0),
        Behaviour(error_rate=0.1, quality_mean=0.6),
        Behaviour(),
    ]
    servers: dict[str, str | ServerSpec] = {}
    for i, (app, behaviour) in enumerate(zip(APPS, behaviours, strict=True)):
        for variant in ("v1", "v2"):
            chosen = behaviour if variant == "v2" else Behaviour()
            servers[f"d{i}-{variant}"] = ServerSpec(variant, behaviour=chosen, labels={"app": app}, seed=i)
    model_servers(namespace, servers)
    traffic(weights={name: 1 for name in servers}, rate=60, duration=120, max_requests=10**6, seed=5)

    def every_app_counted() -> bool:
        counted = prometheus.query_by(
            f'sum by (app) (gen_ai_client_operation_duration_seconds_count{{namespace="{namespace}"}})', "app"
        )
        return len(counted) == len(APPS) and all(v >= 100 for v in counted.values())

    # Ten seconds of history or more, so that every window below starts after the first scrape.
    wait_for(every_app_counted, 90, "requests counted for every app")

    queries: list[str] = []

    def count(request: httpx.Request) -> None:
        queries.append(request.url.params.get("query", ""))

    with httpx.Client(timeout=10, event_hooks={"request": [count]}) as http:

        def provider(app: str) -> PrometheusProvider:
            return PrometheusProvider(
                http,
                prometheus.address,
                PRESETS["openTelemetryGenAI"],
                namespace=namespace,
                labels={"app": app, "namespace": namespace},
                scrape_interval=prometheus.scrape_interval,
                query_offset=INGESTION_DELAY_SECONDS,
            )

        end = time.time() - 2.0
        # The same window for all; windows that start at different lastAnalysisAt; one that ends
        # earlier; windows shorter than a scrape.
        layouts = [
            [(end - 4.0, end)] * len(APPS),
            [(end - 4.0 - 1.5 * i, end) for i in range(len(APPS))],
            [(end - 6.0, end - (2.0 if i % 2 else 0.0)) for i in range(len(APPS))],
            [(end - 0.4, end)] * len(APPS),
        ]
        first: list[Any] = []
        for windows in layouts:
            members = [
                BatchMember(provider(app), ("v1", "v2"), start, stop)
                for app, (start, stop) in zip(APPS, windows, strict=True)
            ]
            queries.clear()
            batched = read_batch(members)
            batched_queries = len(queries)
            queries.clear()
            alone = [m.provider.read(m.variants, m.start, m.end) for m in members]
            for member, got, own in zip(members, batched, alone, strict=True):
                assert not isinstance(got, Exception), got
                assert got.variants == own.variants, member.provider.labels
                assert got.problems == () and own.problems == ()
            # The data is real: every member has its own, different numbers.
            missing = [w.variants["v2"].missing for w in alone if w.variants["v2"].requests is None]
            assert not missing, (windows, missing)
            assert batched_queries < len(queries) / 2, (batched_queries, len(queries))
            first = first or alone
        # The reads were of different data: the error rates follow each exporter.
        window = first[1].variants["v2"]
        assert window.errors is not None and window.requests and window.errors > 0
