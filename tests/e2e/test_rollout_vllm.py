"""Rollouts read through the vllm preset: vLLM's names and labels, stored by Prometheus 2.42 as `vllm_...`.

The model servers export vLLM's series (tests/e2e/harness/vllm_exporter.py) beside their own, and the
LLMDeployment reads only those: successes from `vllm:request_success_total` (as `vllm_...`), errors
from the HTTP server's 5xx, TTFT from vLLM's histogram. The variant is a scrape label, as a PodMonitor
relabeling attaches it (see the README's Metrics section). Promote and rollback run at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tests.e2e.cluster import Kube
from tests.e2e.harness.fixtures import ServerSpec
from tests.e2e.harness.prometheus import PrometheusServer
from tests.e2e.scenario import SLOS, Rollout
from tests.e2e.sources import ROLLBACK_STEPS, VARIANTS, promote_and_roll_back, start_source_rollout

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("gateway_api", "operator")]

# Proving a quality drop of at most 0.1 takes minutes at this traffic (see test_rollout.py).
VLLM_SLOS = {**SLOS, "quality": {"minScore": 0.7, "maxDropVsStable": 0.2}}


def start(env: Mapping[str, Any], rollback: bool) -> Rollout:
    return start_source_rollout(
        env,
        servers={
            f"bot-{v}": ServerSpec(v, model=f"model-{v}", seed=i, telemetry="vllm")
            for i, v in enumerate(VARIANTS, 1)
        },
        metrics={"preset": "vllm"},
        slos=VLLM_SLOS,
        **({"steps": ROLLBACK_STEPS} if rollback else {}),
    )


@pytest.mark.timeout(600)
def test_vllm_names_promote_a_healthy_candidate_and_roll_back_errors(
    kube: Kube, prometheus: PrometheusServer, request: pytest.FixtureRequest, report: list[str]
) -> None:
    seconds = promote_and_roll_back(kube, prometheus, request, start, errors={"error_rate": 0.5})
    # The servers are gone (their series stale): look back over the test.
    stored = prometheus.query('count(last_over_time({__name__=~"vllm.request_success_total"}[10m]))')
    assert stored, "vLLM's series did not reach Prometheus"
    report.append(
        f"vllm preset: healthy promoted in {seconds['healthy']:.0f}s,"
        f" errors rolled back in {seconds['errors']:.0f}s (from start)"
    )
