"""Rollouts read from real OpenTelemetry instrumentation, the variant joined through target_info.

Traffic passes through one application process per variant (tests/e2e/harness/otel_client.py, proxy
mode): the real `openai` client instrumented by `opentelemetry-instrumentation-openai-v2`, its metrics
served by `opentelemetry-exporter-prometheus`, the variant only a resource attribute. The
LLMDeployment reads them with `variantFrom: resource`. openai-v2 records no TTFT, so these SLOs leave
TTFT out (a TTFT SLO would stay inconclusive and name the missing series).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.cluster import wait_for
from tests.e2e.harness.fixtures import ServerSpec
from tests.e2e.harness.otel_client import OTelClient
from tests.e2e.scenario import INTERVAL_SECONDS, NAME, SLOS, Rollout, llmdeployment, services_and_route

pytestmark = pytest.mark.usefixtures("gateway_api", "operator")

DECISION_TIMEOUT = 6 * INTERVAL_SECONDS + 10
OTEL_SLOS = {
    "errorRate": SLOS["errorRate"],
    "costPerRequest": SLOS["costPerRequest"],
    "quality": {"minScore": 0.7, "maxDropVsStable": 0.2},
}


@pytest.fixture
def applications() -> Iterator[list[OTelClient]]:
    started: list[OTelClient] = []
    yield started
    for application in started:
        application.close()


def start_otel_rollout(env: dict[str, Any], applications: list[OTelClient], **llmd: Any) -> Rollout:
    kube, namespace, prometheus = env["kube"], env["namespace"], env["prometheus"]
    servers = env["model_servers"](
        namespace,
        {f"bot-{v}": ServerSpec(v, model=f"model-{v}", seed=i) for i, v in enumerate(("v1", "v2"), 1)},
    )
    urls = {}
    for variant in ("v1", "v2"):
        application = OTelClient(variant, servers[f"bot-{variant}"].url, f"model-{variant}", proxy=True)
        applications.append(application)
        assert application.url is not None
        urls[f"bot-{variant}"] = application.url
        # No variant label on the target: the variant is only the OTel resource's.
        prometheus.set_targets(f"{namespace}.app-{variant}", [application.target], {"namespace": namespace})
    prometheus.wait_for_targets({"namespace": namespace}, 4, timeout=30)
    for manifest in services_and_route(namespace):
        result = kube.apply(manifest, namespace)
        assert result.returncode == 0, result.stderr
    generator = env["traffic"](
        namespace, NAME, backends=urls, rate=20.0, duration=600, max_requests=10**6, seed=3
    )
    manifest = llmdeployment(namespace, prometheus.address, slos=OTEL_SLOS, **llmd)
    manifest["spec"]["metrics"] = {
        "prometheus": {"address": prometheus.address, "scrapeInterval": f"{prometheus.scrape_interval:g}s"},
        "preset": "openTelemetryGenAI",
        "variantFrom": "resource",
        "labels": {"namespace": namespace},
    }
    rollout = Rollout(kube, namespace, servers, generator, manifest)
    rollout.apply(manifest)
    return rollout


def test_otel_healthy_candidate_is_promoted(
    rollout_env: dict[str, Any], applications: list[OTelClient], report: list[str]
) -> None:
    started = time.monotonic()
    rollout = start_otel_rollout(rollout_env, applications)
    status = rollout.wait_phase("Promoted", 5 * DECISION_TIMEOUT)
    assert status["stable"] == "v2" and status["weights"] == {"v1": 0, "v2": 100}
    # The requests went through the instrumented applications, whose resources name the variants.
    resources = rollout_env["prometheus"].query_by(
        f'count by (variant) (target_info{{namespace="{rollout.namespace}"}})', "variant"
    )
    assert resources == {"v1": 1, "v2": 1}
    report.append(f"openai-v2 via target_info, healthy: promoted in {time.monotonic() - started:.1f}s")


def test_otel_error_regression_rolls_back(
    rollout_env: dict[str, Any], applications: list[OTelClient], report: list[str]
) -> None:
    rollout = start_otel_rollout(rollout_env, applications, steps=[20, 50, 80, 100])
    rollout.wait_step(50, 3 * DECISION_TIMEOUT)
    injected = time.monotonic()
    rollout.candidate_server.configure(error_rate=0.5)
    status = rollout.wait_phase("RolledBack", 4 * DECISION_TIMEOUT)
    wait_for(lambda: rollout.candidate_share() == 0, 10, "candidate at 0% in the HTTPRoute")
    assert status["weights"] == {"v1": 100, "v2": 0}
    rolled_back = rollout.event_messages("RolledBack")
    assert rolled_back and "errorRate" in rolled_back[-1] and "on v2" in rolled_back[-1], rolled_back
    report.append(
        f"openai-v2 via target_info, errors 50%: rolled back {time.monotonic() - injected:.1f}s after"
    )
