"""Rollouts read through the litellm preset: LiteLLM's names, its requested_model as the variant.

The model servers export LiteLLM's proxy series beside their own (tests/e2e/harness/litellm_exporter.py),
as a LiteLLM proxy in front of each would, with the variant's name as the requested model (one model
alias per variant). The preset's default variant label, requested_model, tells them apart; server
errors count, client errors would not. test_rollout_litellm_proxy.py runs the real proxy; this one,
the same names under production-like control of what is exported. Promote and rollback run at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tests.e2e.cluster import Kube
from tests.e2e.harness.fixtures import ServerSpec
from tests.e2e.harness.prometheus import PrometheusServer
from tests.e2e.scenario import Rollout
from tests.e2e.sources import (
    LITELLM_SLOS,
    ROLLBACK_STEPS,
    VARIANTS,
    promote_and_roll_back,
    start_source_rollout,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("gateway_api", "operator")]


def start(env: Mapping[str, Any], rollback: bool) -> Rollout:
    return start_source_rollout(
        env,
        servers={
            f"bot-{v}": ServerSpec(v, model=v, seed=i, telemetry="litellm") for i, v in enumerate(VARIANTS, 1)
        },
        metrics={"preset": "litellm"},
        slos=LITELLM_SLOS,
        **({"steps": ROLLBACK_STEPS} if rollback else {}),
    )


@pytest.mark.timeout(600)
def test_litellm_names_promote_a_healthy_candidate_and_roll_back_server_errors(
    kube: Kube, prometheus: PrometheusServer, request: pytest.FixtureRequest, report: list[str]
) -> None:
    seconds = promote_and_roll_back(
        kube, prometheus, request, start, errors={"error_rate": 0.5, "error_status": 503}
    )
    report.append(
        f"litellm preset: healthy promoted in {seconds['healthy']:.0f}s,"
        f" 503s rolled back in {seconds['errors']:.0f}s (from start)"
    )
