"""The OTel preset on telemetry from real libraries (openai-v2 or OpenLLMetry) and the OTel exporter.

Each variant's client is its own process (tests/e2e/harness/otel_client.py) whose only trace of the
variant is the resource attribute on `target_info`, scraped by the real Prometheus. With
`variantFrom: resource` the provider finds the series through target_info; with `label` it finds
nothing, and says which series it looked for. openai-v2 records no time to first token: TTFT is missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmrollout.analysis.observations import VariantWindow
from llmrollout.metrics import PRESETS
from llmrollout.metrics.prometheus import PrometheusProvider
from tests.e2e.harness.modelserver import Behaviour, ModelServer
from tests.e2e.harness.otel_client import OTelClient
from tests.e2e.harness.prometheus import PrometheusServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
DURATION = "gen_ai_client_operation_duration_seconds"


@pytest.fixture(params=["openai-v2", "openllmetry"])
def otel(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[PrometheusServer, dict[str, OTelClient]]]:
    servers = {
        "v1": ModelServer("v1", "model-v1", Behaviour(error_rate=0.0), seed=1).start(),
        "v2": ModelServer("v2", "model-v2", Behaviour(error_rate=0.3), seed=2).start(),
    }
    clients: dict[str, OTelClient] = {}
    prometheus = PrometheusServer(tmp_path / "prometheus", scrape_interval=1.0)
    try:
        for variant, server in servers.items():
            clients[variant] = OTelClient(variant, server.url, server.model, request.param)
        prometheus.start()
        # No variant label on the targets: only the OTel resource knows the variant.
        prometheus.set_targets("clients", [c.target for c in clients.values()], {})
        prometheus.wait_for_targets({}, 2, timeout=30)
        yield prometheus, clients
    finally:
        prometheus.stop()
        for client in clients.values():
            client.close()
        for server in servers.values():
            server.stop()


def test_resource_variant_is_read_through_target_info(
    otel: tuple[PrometheusServer, dict[str, OTelClient]],
) -> None:
    prometheus, clients = otel
    # The exporter serves nothing, target_info included, before the first measurement: every series
    # is created inside the window and counts from 0.
    begin = time.time()
    for client in clients.values():
        client.send(30)
    total = sum(c.sent.ok + c.sent.errors for c in clients.values())
    prometheus.wait_until(
        f"sum({DURATION}_count)", lambda s: bool(s) and s[0].value == total, timeout=20, what="every request"
    )
    end = prometheus.query_value("max(timestamp(up))")
    assert end is not None

    with httpx.Client(timeout=10.0) as http:

        def read(variant_from: str) -> dict[str, VariantWindow]:
            provider = PrometheusProvider(
                http, prometheus.address, PRESETS["openTelemetryGenAI"], namespace="n",
                variant_from=variant_from, scrape_interval=1,  # type: ignore[arg-type]
            )  # fmt: skip
            window = provider.read(["v1", "v2"], begin, end)
            assert window.problems == ()
            return dict(window.variants)

        by_resource = read("resource")
        by_label = read("label")

    for variant, client in clients.items():
        got = by_resource[variant]
        sent = client.sent
        print(
            f"\n{variant}: sent {sent}; read {got.requests} requests, {got.errors} errors;"
            f" missing {got.missing}"
        )
        assert (got.requests, got.errors) == (sent.ok + sent.errors, sent.errors)
        assert got.latency is not None and got.latency.count == sent.ok + sent.errors
        assert (got.input_tokens, got.output_tokens) == (sent.input_tokens, sent.output_tokens)
        if client.instrumentation == "openai-v2":
            # openai-v2 records no time to first token, streamed or not.
            assert got.ttft is None
            ttft_missing = got.missing["ttft"]
            assert "(gen_ai_server_time_to_first_token_seconds_bucket{}) on(job, instance)" in ttft_missing
            assert "gen_ai_client_operation_time_to_first_chunk_seconds_bucket" in ttft_missing
            assert f'target_info{{variant="{variant}"}}' in ttft_missing
        else:
            # OpenLLMetry records it for the successful streamed calls (every other call).
            assert got.ttft is not None and 0 < got.ttft.count <= sent.ok
            assert got.found["input_tokens"] == "gen_ai_client_token_usage_token_sum"
        assert by_label[variant].requests is None
        assert by_label[variant].missing["requests"] == f'{DURATION}_count{{variant="{variant}"}}'
    assert clients["v2"].sent.errors > 0 and clients["v1"].sent.errors == 0
