"""Rollouts read from real OpenTelemetry instrumentation, the variant joined through target_info.

Traffic passes through one application process per variant (tests/e2e/harness/otel_client.py, proxy
mode): the real `openai` client instrumented by the official `opentelemetry-instrumentation-openai-v2`
or by OpenLLMetry's `opentelemetry-instrumentation-openai` (whose token histogram arrives as
`gen_ai_client_token_usage_token_*`), its metrics served by `opentelemetry-exporter-prometheus`, the
variant only a resource attribute. The LLMDeployment reads them with `variantFrom: resource`. For each
instrumentation a healthy candidate is promoted and an error regression rolled back, both at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.e2e.cluster import Kube
from tests.e2e.harness.fixtures import ServerSpec
from tests.e2e.harness.modelserver import ModelServer
from tests.e2e.harness.otel_client import OTelClient
from tests.e2e.harness.prometheus import PrometheusServer
from tests.e2e.scenario import Rollout
from tests.e2e.sources import (
    OTEL_SLOS,
    ROLLBACK_STEPS,
    VARIANTS,
    Front,
    FrontFactory,
    promote_and_roll_back,
    start_source_rollout,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("gateway_api", "operator")]


@pytest.fixture
def applications(prometheus: PrometheusServer) -> Iterator[dict[str, OTelClient]]:
    """{Prometheus target group: application}; each is deregistered and stopped at teardown."""
    started: dict[str, OTelClient] = {}
    yield started
    for group, application in started.items():
        prometheus.remove_targets(group)
        application.close()


def instrumented(
    prometheus: PrometheusServer, applications: dict[str, OTelClient], instrumentation: str
) -> FrontFactory:
    def front(namespace: str, servers: dict[str, ModelServer]) -> Front:
        urls = {}
        for variant in VARIANTS:
            application = OTelClient(
                variant, servers[f"bot-{variant}"].url, f"model-{variant}", instrumentation, proxy=True
            )
            group = f"{namespace}.app-{variant}"
            applications[group] = application
            assert application.url is not None
            urls[f"bot-{variant}"] = application.url
            # No variant label on the target: the variant is only the OTel resource's.
            prometheus.set_targets(group, [application.target], {"namespace": namespace})
        prometheus.wait_for_targets({"namespace": namespace}, 4, timeout=60)
        return Front(backends=urls)

    return front


@pytest.mark.timeout(600)
@pytest.mark.parametrize("instrumentation", ["openai-v2", "openllmetry"])
def test_otel_instrumentation_promotes_a_healthy_candidate_and_rolls_back_errors(
    kube: Kube,
    prometheus: PrometheusServer,
    applications: dict[str, OTelClient],
    instrumentation: str,
    request: pytest.FixtureRequest,
    report: list[str],
) -> None:
    front = instrumented(prometheus, applications, instrumentation)

    def start(env: Mapping[str, Any], rollback: bool) -> Rollout:
        return start_source_rollout(
            env,
            servers={
                f"bot-{v}": ServerSpec(v, model=f"model-{v}", seed=i) for i, v in enumerate(VARIANTS, 1)
            },
            metrics={"preset": "openTelemetryGenAI", "variantFrom": "resource"},
            slos=OTEL_SLOS,
            front=front,
            rate=20.0,
            **({"steps": ROLLBACK_STEPS} if rollback else {}),
        )

    seconds = promote_and_roll_back(kube, prometheus, request, start, errors={"error_rate": 0.5})
    # The requests went through the instrumented applications, whose resources name the variants.
    names = {
        "openai-v2": "gen_ai_client_token_usage_sum",
        "openllmetry": "gen_ai_client_token_usage_token_sum",
    }
    groups = [g.split(".")[0] for g in applications]
    tokens = prometheus.query_value(f'count({names[instrumentation]}{{namespace=~"{"|".join(groups)}"}})')
    assert tokens, f"no {names[instrumentation]} series from the {instrumentation} applications"
    report.append(
        f"{instrumentation} via target_info: healthy promoted in {seconds['healthy']:.0f}s,"
        f" errors rolled back in {seconds['errors']:.0f}s (from start)"
    )
