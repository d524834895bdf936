"""Rollouts read from a real LiteLLM proxy (its `prometheus` callback) in front of the model servers.

One proxy per rollout, with one model alias per variant (`v1`, `v2`) pointing at that variant's model
server (tests/e2e/harness/litellm_proxy.py). The application asks for the alias the route picks (the
traffic generator stands in for a gateway that routes by model), so LiteLLM's `requested_model`, the
litellm preset's default variant label, tells the versions apart. The real Prometheus scrapes the
proxy's /metrics. A healthy candidate is promoted; one whose server starts answering 503 (which
LiteLLM passes on as 503, counted by its status_code) is rolled back, naming errorRate. Both at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Kube
from tests.e2e.harness.fixtures import ServerSpec
from tests.e2e.harness.litellm_proxy import LiteLLMProxy
from tests.e2e.harness.modelserver import ModelServer
from tests.e2e.harness.prometheus import PrometheusError, PrometheusServer
from tests.e2e.scenario import Rollout
from tests.e2e.sources import (
    LITELLM_SLOS,
    ROLLBACK_STEPS,
    VARIANTS,
    Front,
    promote_and_roll_back,
    start_source_rollout,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("gateway_api", "operator")]
SCRAPE_SECONDS = 3.0


@pytest.fixture(scope="module")
def slow_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Scrapes every 3 s: LiteLLM serves /metrics (~120 kB) from the event loop that proxies the requests,
    and on a busy machine that can take longer than the session Prometheus's 1 s timeout."""
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus-litellm"), scrape_interval=SCRAPE_SECONDS)
    try:
        server.start()
    except PrometheusError as exc:
        pytest.fail(f"the real Prometheus did not start: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def proxies(slow_prometheus: PrometheusServer) -> Iterator[dict[str, LiteLLMProxy]]:
    """{Prometheus target group: proxy}; each is deregistered and stopped at teardown."""
    started: dict[str, LiteLLMProxy] = {}
    yield started
    for group, proxy in started.items():
        slow_prometheus.remove_targets(group)
        proxy.stop()


def _front(prometheus: PrometheusServer, proxies: dict[str, LiteLLMProxy], workdir: Path) -> Any:
    def front(namespace: str, servers: dict[str, ModelServer]) -> Front:
        folder = workdir / namespace
        folder.mkdir()
        proxy = LiteLLMProxy({v: servers[f"bot-{v}"].url for v in VARIANTS}, folder)
        group = f"{namespace}.litellm"
        proxies[group] = proxy
        proxy.start()
        # No variant label on the target: the variant is the requested model on every series.
        prometheus.set_targets(group, [proxy.target], {"namespace": namespace})
        prometheus.wait_for_targets({"namespace": namespace}, 3, timeout=60)
        return Front(
            backends={f"bot-{v}": proxy.url for v in VARIANTS},
            models={f"bot-{v}": v for v in VARIANTS},
            headers=proxy.headers,
        )

    return front


@pytest.mark.timeout(900)
def test_litellm_proxy_promotes_a_healthy_candidate_and_rolls_back_server_errors(
    kube: Kube,
    slow_prometheus: PrometheusServer,
    proxies: dict[str, LiteLLMProxy],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    report: list[str],
) -> None:
    prometheus = slow_prometheus
    front = _front(prometheus, proxies, tmp_path)

    def start(env: Mapping[str, Any], rollback: bool) -> Rollout:
        return start_source_rollout(
            env,
            servers={
                f"bot-{v}": ServerSpec(v, model=f"model-{v}", seed=i) for i, v in enumerate(VARIANTS, 1)
            },
            metrics={"preset": "litellm"},
            slos=LITELLM_SLOS,
            front=front,
            # What one proxy serves with room to spare on a busy machine (a saturated proxy answers
            # /metrics late); the windows still hold many requests, so LiteLLM's counters, which it
            # updates at different moments of a request, agree within a window.
            rate=6.0,
            interval=f"{4 * SCRAPE_SECONDS:g}s",
            **({"steps": ROLLBACK_STEPS} if rollback else {}),
        )

    seconds = promote_and_roll_back(
        kube, prometheus, request, start, errors={"error_rate": 0.5, "error_status": 503}
    )
    # The decisions were read from LiteLLM's own series, labelled with the requested model.
    stored = prometheus.query_by(
        "sum by (requested_model) (litellm_proxy_total_requests_metric_total)", "requested_model"
    )
    assert set(stored) >= {"v1", "v2"}, stored
    report.append(
        f"real LiteLLM proxy: healthy promoted in {seconds['healthy']:.0f}s,"
        f" 503s rolled back in {seconds['errors']:.0f}s (from start)"
    )
