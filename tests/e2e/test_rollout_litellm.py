"""Rollouts read through the litellm preset: LiteLLM's names, its requested_model as the variant.

The model servers export LiteLLM's proxy series beside their own (tests/e2e/harness/litellm_exporter.py),
as a LiteLLM proxy in front of each would, with the variant's name as the requested model (one model
alias per variant). The preset's default variant label, requested_model, tells them apart; server
errors count, client errors would not. TTFT (streamed calls only in LiteLLM) and quality (our judge's
series carry the variant label, not requested_model) are left out of these SLOs.
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
LITELLM_SLOS = {
    "errorRate": SLOS["errorRate"],
    "costPerRequest": SLOS["costPerRequest"],
    "latency": {"p95": "5s"},
}


def start_litellm_rollout(env: dict[str, Any], **llmd: Any) -> Rollout:
    kube, namespace, prometheus = env["kube"], env["namespace"], env["prometheus"]
    servers = env["model_servers"](
        namespace,
        {
            f"bot-{v}": ServerSpec(v, model=v, behaviour=Behaviour(), seed=i, telemetry="litellm")
            for i, v in enumerate(("v1", "v2"), start=1)
        },
    )
    for manifest in services_and_route(namespace):
        result = kube.apply(manifest, namespace)
        assert result.returncode == 0, result.stderr
    generator = env["traffic"](namespace, NAME, rate=40.0, duration=600, max_requests=10**6, seed=3)
    manifest = llmdeployment(namespace, prometheus.address, slos=LITELLM_SLOS, **llmd)
    manifest["spec"]["metrics"] = {
        "prometheus": {"address": prometheus.address, "scrapeInterval": f"{prometheus.scrape_interval:g}s"},
        "preset": "litellm",
        "labels": {"namespace": namespace},
    }
    rollout = Rollout(kube, namespace, servers, generator, manifest)
    rollout.apply(manifest)
    return rollout


def test_litellm_healthy_candidate_is_promoted(rollout_env: dict[str, Any], report: list[str]) -> None:
    started = time.monotonic()
    rollout = start_litellm_rollout(rollout_env)
    status = rollout.wait_phase("Promoted", 5 * DECISION_TIMEOUT)
    assert status["stable"] == "v2" and status["weights"] == {"v1": 0, "v2": 100}
    report.append(f"litellm preset, healthy: promoted in {time.monotonic() - started:.1f}s")


def test_litellm_server_errors_roll_back(rollout_env: dict[str, Any], report: list[str]) -> None:
    rollout = start_litellm_rollout(rollout_env, steps=[20, 50, 80, 100])
    rollout.wait_step(50, 3 * DECISION_TIMEOUT)
    injected = time.monotonic()
    rollout.candidate_server.configure(error_rate=0.5, error_status=503)
    status = rollout.wait_phase("RolledBack", 4 * DECISION_TIMEOUT)
    wait_for(lambda: rollout.candidate_share() == 0, 10, "candidate at 0% in the HTTPRoute")
    assert status["weights"] == {"v1": 100, "v2": 0}
    rolled_back = rollout.event_messages("RolledBack")
    assert rolled_back and "errorRate" in rolled_back[-1] and "on v2" in rolled_back[-1], rolled_back
    report.append(f"litellm preset, 503s 50%: rolled back {time.monotonic() - injected:.1f}s after injection")
