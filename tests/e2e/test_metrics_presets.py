"""Presets against real exporters' names and labels, scraped by the real Prometheus (no cluster needed).

vLLM's names and labels come from its source (tests/e2e/harness/vllm_exporter.py) and reach Prometheus
2.42 through prometheus_client, which may store them as `vllm_...`. Two ways to tell variants apart:
vLLM's own `model_name` (on which the HTTP error series are missing, so errors must read as missing,
never 0), and a scrape label attached per target, as a PodMonitor relabeling would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmrollout.analysis.observations import Histogram
from llmrollout.metrics import PRESETS
from llmrollout.metrics.prometheus import PrometheusProvider
from tests.e2e.harness.litellm_exporter import LiteLLMExporter
from tests.e2e.harness.prometheus import PrometheusServer
from tests.e2e.harness.vllm_exporter import E2E_BUCKETS, TTFT_BUCKETS, VLLMExporter

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def cumulative(values: list[float], bounds: tuple[float, ...]) -> Histogram:
    return Histogram(tuple((b, float(sum(v <= b for v in values))) for b in (*bounds, math.inf)))


@pytest.fixture
def vllm_servers(tmp_path: Path) -> Iterator[tuple[PrometheusServer, dict[str, VLLMExporter]]]:
    exporters = {"v1": VLLMExporter("model-a"), "v2": VLLMExporter("model-b")}
    server = PrometheusServer(tmp_path / "prometheus", scrape_interval=1.0)
    try:
        server.start()
        for variant, exporter in exporters.items():
            server.set_targets(variant, [exporter.target], {"variant": variant})
        server.wait_for_targets({}, 2, timeout=30)
        yield server, exporters
    finally:
        server.stop()
        for exporter in exporters.values():
            exporter.close()


def last_scrape(server: PrometheusServer, want: float) -> float:
    """Waits until every target's last scrape holds the final counts; returns the newest scrape's time."""
    query = 'sum({__name__=~"http_requests(_total)?"})'
    server.wait_until(query, lambda s: bool(s) and s[0].value == want, timeout=20, what="the last counts")
    stamp = server.query_value("max(timestamp(up))")
    assert stamp is not None
    return stamp


def test_vllm_preset_reads_vllm_names_and_never_reads_missing_errors_as_zero(
    vllm_servers: tuple[PrometheusServer, dict[str, VLLMExporter]],
) -> None:
    server, exporters = vllm_servers
    server.wait_until(
        'count({__name__=~"vllm.request_success_total"})', lambda s: bool(s) and s[0].value == 8
    )
    begin = time.time()
    time.sleep(1.5)  # a scrape of the zero-valued series lies before `begin`
    a, b = exporters["v1"], exporters["v2"]
    for i in range(30):
        a.finish(ttft=0.03 + i * 0.001, latency=0.9, prompt=100, generated=40)
    for i, reason in enumerate(["stop"] * 20 + ["length"] * 5 + ["abort"] * 3 + ["error"] * 2):
        b.finish(
            ttft=(0.05, 0.3, 0.7)[i % 3],
            latency=(0.4, 1.2, 3.0)[i % 3],
            prompt=90,
            generated=30,
            reason=reason,
        )
    for _ in range(4):
        b.fail("5xx")
    end = last_scrape(server, sum(b.truth.http.values()) + sum(a.truth.http.values()))

    with httpx.Client(timeout=10.0) as client:
        by_model = PrometheusProvider(
            client,
            server.address,
            PRESETS["vllm"],
            namespace="n",
            variant_label="model_name",
            scrape_interval=1,
        ).read(["model-a", "model-b"], begin, end)
        by_scrape_label = PrometheusProvider(
            client, server.address, PRESETS["vllm"], namespace="n", scrape_interval=1
        ).read(["v1", "v2"], begin, end)
    assert by_model.problems == () and by_scrape_label.problems == ()

    got = by_model.variants["model-b"]
    print(f"\nvllm preset found: {got.found}\nmissing: {got.missing}")
    # Successes are stop and length only; the HTTP errors carry no model_name: missing, named, not 0.
    assert got.requests == 25
    assert got.errors is None
    assert got.missing["errors"].endswith('http_requests_total{model_name="model-b",status=~"5.."}')
    assert got.found["requests"] in ("vllm:request_success_total", "vllm_request_success_total")
    assert got.ttft == cumulative(b.truth.ttfts, TTFT_BUCKETS)
    assert got.latency == cumulative(b.truth.latencies, E2E_BUCKETS)
    assert (got.input_tokens, got.output_tokens) == (b.truth.prompt_tokens, b.truth.generation_tokens)
    assert by_model.variants["model-a"].errors is None

    # With the variant as a scrape label, the HTTP series carry it too: errors are the 5xx responses
    # (4 failures and 2 engine errors), and a variant without failures reads a true 0.
    v2, v1 = by_scrape_label.variants["v2"], by_scrape_label.variants["v1"]
    assert (v2.requests, v2.errors) == (31, 6)
    assert (v1.requests, v1.errors) == (30, 0)
    # Only our evaluator's series are missing here: no judge runs in this test.
    assert (
        set(v2.missing)
        == set(v1.missing)
        == {
            "eval_score",
            "eval_score_sum",
            "eval_score_count",
            "eval_passed",
            "eval_failed",
            "feedback_up",
            "feedback_down",
        }
    )


def test_litellm_preset_reads_requested_model_and_only_server_errors(tmp_path: Path) -> None:
    exporter = LiteLLMExporter()
    server = PrometheusServer(tmp_path / "prometheus", scrape_interval=1.0)
    try:
        server.start()
        server.set_targets("proxy", [exporter.target], {})
        server.wait_for_targets({}, 1, timeout=30)
        begin = time.time()
        time.sleep(1.5)
        for i in range(40):
            exporter.request("support-v1")
            # The candidate: client mistakes (400, 429) are not its errors; 500s and timeouts are.
            exporter.request("support-v2", status=(200, 200, 400, 429, 500, 408, 200, 200)[i % 8])
        want = sum(exporter.truth.values())
        query = "sum(litellm_proxy_total_requests_metric_total)"
        server.wait_until(query, lambda s: bool(s) and s[0].value == want, timeout=20, what="the last counts")
        end = server.query_value("max(timestamp(up))")
        assert end is not None
        with httpx.Client(timeout=10.0) as client:
            window = PrometheusProvider(
                client, server.address, PRESETS["litellm"], namespace="n", scrape_interval=1
            ).read(["support-v1", "support-v2"], begin, end)
    finally:
        server.stop()
        exporter.close()
    assert window.problems == ()
    v1, v2 = window.variants["support-v1"], window.variants["support-v2"]
    print(f"\nlitellm preset found: {v2.found}\nmissing: {v2.missing}")
    assert (v1.requests, v1.errors) == (40, 0)  # its requests carry status_code: a true 0
    assert (v2.requests, v2.errors) == (40, 10)  # 5 of each of 500 and 408, none of 400 and 429
    assert v2.latency is not None and v2.latency.count == 20
    assert (v2.input_tokens, v2.output_tokens) == (2000, 1000)
    # LiteLLM's TTFT histogram exists for streamed calls only: none here, so missing and named.
    assert v2.ttft is None
    assert (
        v2.missing["ttft"]
        == 'litellm_llm_api_time_to_first_token_metric_bucket{requested_model="support-v2"}'
    )
