"""Missing series on the real cluster and Prometheus: named before traffic moves, never read as zero.

vLLM's own model label is `model_name`, but the HTTP series that carry its errors have none (see
tests/e2e/harness/vllm_exporter.py). Two scenarios, run at once in namespaces of their own:
- blocked: `variantLabel: model_name` everywhere. The serving version's error series cannot be found,
  so `MetricsReady=False` names them and what to fix, the HTTPRoute is never changed for the
  candidate, and `llmrollout check` prints the same report (exit 1).
- candidate: the serving version's pods get `model_name` as a scrape label (every series of the target
  carries it), the candidate's do not. The rollout starts (its series are reported, not required),
  and the candidate's 50% server errors are never read as 0: errorRate stays inconclusive on it,
  naming the missing series, until the inconclusive limit rolls it back.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.e2e.cluster import Kube, llmrollout, wait_for
from tests.e2e.harness.fixtures import ModelServers, ServerSpec, Traffic
from tests.e2e.harness.modelserver import Behaviour
from tests.e2e.harness.prometheus import PrometheusServer
from tests.e2e.scenario import INTERVAL_SECONDS, NAME, Rollout, llmdeployment, services_and_route

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("gateway_api", "operator")]

SLOS = {"errorRate": {"max": 0.05}, "ttft": {"p95": "800ms"}}
INCONCLUSIVE_LIMIT = 3
# How long a blocked rollout is watched for any change of the route: several analysis intervals.
BLOCKED_FOR = 4 * INTERVAL_SECONDS
DECISION_TIMEOUT = 6 * INTERVAL_SECONDS + 10


def errors_selector(variant: str, namespace: str) -> str:
    return f'http_requests_total{{model_name="{variant}",namespace="{namespace}",status=~"5.."}}'


@pytest.fixture
def namespaces(kube: Kube) -> Iterator[dict[str, str]]:
    names = {case: f"e2e-ready-{case}-{uuid.uuid4().hex[:6]}" for case in ("blocked", "candidate")}
    for name in names.values():
        kube.kubectl("create", "namespace", name)
    yield names
    for name in names.values():
        kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _start(
    kube: Kube,
    namespace: str,
    prometheus: PrometheusServer,
    servers: ModelServers,
    traffic: Traffic,
    labelled: tuple[str, ...],
) -> Rollout:
    """vLLM-named servers, variant = model_name; `labelled` versions also get it as a scrape label."""
    started = servers(
        namespace,
        {
            f"bot-{v}": ServerSpec(
                v,
                model=v,
                behaviour=Behaviour(error_rate=0.5 if v == "v2" else 0.0),
                seed=i,
                telemetry="vllm",
                labels={"model_name": v} if v in labelled else {},
            )
            for i, v in enumerate(("v1", "v2"), start=1)
        },
    )
    for manifest in services_and_route(namespace):
        result = kube.apply(manifest, namespace)
        assert result.returncode == 0, result.stderr
    # Traffic first: v1's HTTP series appear with its first requests, as a real server's do.
    generator = traffic(namespace, NAME, rate=30.0, duration=600, max_requests=10**6, seed=3)
    manifest = llmdeployment(
        namespace,
        prometheus.address,
        slos=SLOS,
        inconclusive_limit=INCONCLUSIVE_LIMIT,
        scrape_interval=f"{prometheus.scrape_interval:g}s",
    )
    manifest["spec"]["metrics"].update({"preset": "vllm", "variantLabel": "model_name"})
    return Rollout(kube, namespace, started, generator, manifest)


def _blocked(rollout: Rollout) -> dict[str, Any]:
    rollout.watch_route()
    rollout.apply(rollout.manifest)

    def not_ready() -> dict[str, Any] | None:
        ready = next((c for c in rollout.status().get("conditions", []) if c["type"] == "MetricsReady"), None)
        return ready if ready is not None and ready["status"] == "False" else None

    condition: dict[str, Any] = wait_for(not_ready, DECISION_TIMEOUT, "MetricsReady=False")
    route = rollout.kube.get("httproute", NAME, rollout.namespace)
    time.sleep(BLOCKED_FOR)  # nothing must happen: there is no event to wait for
    rollout.stop_watching()
    after = rollout.kube.get("httproute", NAME, rollout.namespace)
    return {
        "condition": condition,
        "before": route["metadata"]["resourceVersion"],
        "after": after["metadata"]["resourceVersion"],
        "seen": list(rollout.seen_weights),
        "status": rollout.status(),
        "check": llmrollout(rollout.kube, "check", NAME, "-n", rollout.namespace),
    }


def _candidate_missing(rollout: Rollout) -> dict[str, Any]:
    rollout.apply(rollout.manifest)
    rollout.wait_step(20, DECISION_TIMEOUT)
    check = llmrollout(rollout.kube, "check", NAME, "-n", rollout.namespace)
    status = rollout.wait_phase_in(("RolledBack", "Promoted"), 3 * INCONCLUSIVE_LIMIT * DECISION_TIMEOUT)
    events = wait_for(lambda: rollout.event_messages("RolledBack"), 30, "the RolledBack Event")
    return {
        "status": status,
        "check": check,
        "events": events,
        "inconclusive": rollout.event_messages("AnalysisInconclusive"),
    }


@pytest.mark.timeout(600)
def test_missing_series_are_named_before_traffic_moves_and_never_read_as_zero(
    kube: Kube, namespaces: dict[str, str], prometheus: PrometheusServer, request: pytest.FixtureRequest
) -> None:
    servers = {case: ModelServers(prometheus) for case in namespaces}
    traffic = {case: Traffic(request, servers[case]) for case in namespaces}
    try:
        blocked = _start(kube, namespaces["blocked"], prometheus, servers["blocked"], traffic["blocked"], ())
        candidate = _start(
            kube, namespaces["candidate"], prometheus, servers["candidate"], traffic["candidate"], ("v1",)
        )
        with ThreadPoolExecutor(2) as pool:
            blocked_run = pool.submit(_blocked, blocked)
            candidate_run = pool.submit(_candidate_missing, candidate)
            seen, rolled = blocked_run.result(), candidate_run.result()
    finally:
        for case in namespaces:
            traffic[case].close()
            servers[case].close()

    # Blocked: the serving version's error series are named, with what to fix, and no traffic moved.
    ns = namespaces["blocked"]
    message = seen["condition"]["message"]
    assert seen["condition"]["reason"] == "SeriesMissing"
    assert message.startswith("rollout of v2 not started: series missing on v1, which serves now:"), message
    assert errors_selector("v1", ns) in message
    assert "To fix: its other series are found, so the exporter does not put model_name on errors" in message
    assert seen["before"] == seen["after"], "the HTTPRoute changed while the rollout was blocked"
    assert seen["seen"] == [0], f"the candidate got traffic: {seen['seen']}"
    assert seen["status"]["phase"] == "Idle" and seen["status"]["weights"] == {"v1": 100, "v2": 0}
    # `llmrollout check` prints the same report: the missing series, and the condition's words.
    check = seen["check"]
    assert check.returncode == 1, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert any(
        line.startswith("    missing errors: ") and errors_selector("v1", ns) in line for line in lines
    )
    assert lines[-1] == f"MetricsReady: False: {message}"

    # Candidate: its error series lack the label; 50% errors are never read as 0 errors.
    ns = namespaces["candidate"]
    status = rolled["status"]
    assert status["phase"] == "RolledBack", status
    assert status["weights"] == {"v1": 100, "v2": 0}
    missing = errors_selector("v2", ns)
    assert any(missing in m and "errorRate" in m for m in rolled["inconclusive"]), rolled["inconclusive"]
    assert "inconclusive analyses in a row" in rolled["events"][-1] and missing in rolled["events"][-1]
    check = rolled["check"]
    assert check.returncode == 1, check.stdout + check.stderr
    assert "    missing errors: " in check.stdout and missing in check.stdout
    assert check.stdout.splitlines()[-1].startswith("MetricsReady: True: every SLO's series found on v1")
