"""Rollouts read through the vllm preset: vLLM's names and labels, stored by Prometheus 2.42 as `vllm_...`.

The model servers export vLLM's series (tests/e2e/harness/vllm_exporter.py) beside their own, and the
LLMDeployment reads only those: successes from `vllm:request_success_total` (as `vllm_...`), errors
from the HTTP server's 5xx, TTFT from vLLM's histogram. The variant is a scrape label, as a PodMonitor
relabeling attaches it (see the README's Metrics section).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.cluster import wait_for
from tests.e2e.harness.fixtures import ServerSpec
from tests.e2e.harness.modelserver import Behaviour
from tests.e2e.scenario import INTERVAL_SECONDS, NAME, SLOS, Rollout, llmdeployment, services_and_route

pytestmark = pytest.mark.usefixtures("gateway_api", "operator")

DECISION_TIMEOUT = 6 * INTERVAL_SECONDS + 10


def start_vllm_rollout(env: dict[str, Any], **llmd: Any) -> Rollout:
    kube, namespace, prometheus = env["kube"], env["namespace"], env["prometheus"]
    servers = env["model_servers"](
        namespace,
        {
            f"bot-{v}": ServerSpec(v, model=f"model-{v}", behaviour=Behaviour(), seed=i, telemetry="vllm")
            for i, v in enumerate(("v1", "v2"), start=1)
        },
    )
    for manifest in services_and_route(namespace):
        result = kube.apply(manifest, namespace)
        assert result.returncode == 0, result.stderr
    generator = env["traffic"](namespace, NAME, rate=40.0, duration=600, max_requests=10**6, seed=3)
    manifest = llmdeployment(namespace, prometheus.address, **llmd)
    manifest["spec"]["metrics"] = {
        "prometheus": {"address": prometheus.address, "scrapeInterval": f"{prometheus.scrape_interval:g}s"},
        "preset": "vllm",
        "labels": {"namespace": namespace},
    }
    rollout = Rollout(kube, namespace, servers, generator, manifest)
    rollout.apply(manifest)
    return rollout


def vllm_slos() -> dict[str, Any]:
    # Proving a quality drop of at most 0.1 takes minutes at this traffic (see test_rollout.py).
    return {**SLOS, "quality": {"minScore": 0.7, "maxDropVsStable": 0.2}}


def test_vllm_healthy_candidate_is_promoted(rollout_env: dict[str, Any], report: list[str]) -> None:
    started = time.monotonic()
    rollout = start_vllm_rollout(rollout_env, slos=vllm_slos())
    status = rollout.wait_phase("Promoted", 5 * DECISION_TIMEOUT)
    assert status["stable"] == "v2" and status["weights"] == {"v1": 0, "v2": 100}
    prometheus = rollout_env["prometheus"]
    stored = prometheus.query(
        f'count({{__name__=~"vllm.request_success_total",namespace="{rollout.namespace}"}})'
    )
    assert stored, "vLLM's series did not reach Prometheus"
    report.append(f"vllm preset, healthy: promoted in {time.monotonic() - started:.1f}s")


def test_vllm_error_regression_rolls_back(rollout_env: dict[str, Any], report: list[str]) -> None:
    rollout = start_vllm_rollout(rollout_env, slos=vllm_slos(), steps=[20, 50, 80, 100])
    rollout.wait_step(50, 3 * DECISION_TIMEOUT)
    injected = time.monotonic()
    rollout.candidate_server.configure(error_rate=0.5)
    status = rollout.wait_phase("RolledBack", 4 * DECISION_TIMEOUT)
    wait_for(lambda: rollout.candidate_share() == 0, 10, "candidate at 0% in the HTTPRoute")
    assert status["weights"] == {"v1": 100, "v2": 0}
    rolled_back = rollout.event_messages("RolledBack")
    assert rolled_back and "errorRate" in rolled_back[-1] and "on v2" in rolled_back[-1], rolled_back
    report.append(f"vllm preset, errors 50%: rolled back {time.monotonic() - injected:.1f}s after injection")
