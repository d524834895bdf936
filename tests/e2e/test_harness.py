"""Self-tests of the e2e harness against the real Prometheus (and, for the route, the real cluster).

Each test isolates itself by a namespace label of its own; the real Prometheus is shared by the session.
Waits poll with deadlines counted in scrape intervals; nothing here sleeps for a fixed time.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.cluster import Kube, wait_for
from tests.e2e.harness.fixtures import ModelServers, ServerSpec, Traffic
from tests.e2e.harness.judge import JudgeProcess
from tests.e2e.harness.modelserver import TTFT_BUCKETS, Behaviour, ModelServer, scripted
from tests.e2e.harness.prometheus import PrometheusError, PrometheusServer, Sample
from tests.e2e.harness.traffic import JudgeFeed, TrafficGenerator

pytestmark = pytest.mark.e2e

DURATION = "gen_ai_client_operation_duration_seconds"
TTFT = "gen_ai_server_time_to_first_token_seconds"
TOKENS = "gen_ai_client_token_usage"


def label_namespace(request: pytest.FixtureRequest) -> str:
    """A namespace label no other test uses; tests that need no cluster object need no real namespace."""
    return f"h-{request.node.name[5:25].replace('_', '-')}-{uuid.uuid4().hex[:6]}"


def scrapes(prometheus: PrometheusServer, n: float) -> float:
    return n * prometheus.scrape_interval + 2.0


def wait_counts(prometheus: PrometheusServer, promql: str, label: str, expected: dict[str, float]) -> None:
    def equal(samples: list[Sample]) -> bool:
        return {s.labels.get(label, ""): s.value for s in samples} == expected

    prometheus.wait_until(promql, equal, timeout=scrapes(prometheus, 4), what=f"{promql} == {expected}")


def test_model_server_speaks_openai_and_takes_control_changes() -> None:
    server = ModelServer("bot-v1", "llama-3.1-8b-instruct", Behaviour(error_rate=0.0), seed=1)
    with server, httpx.Client(base_url=server.url, timeout=5) as client:
        body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}

        answer = client.post("/v1/chat/completions", json=body)
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["object"] == "chat.completion"
        assert data["model"] == "llama-3.1-8b-instruct"
        assert data["choices"][0]["message"]["role"] == "assistant"
        usage = data["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
        assert len(data["choices"][0]["message"]["content"].split()) == usage["completion_tokens"]

        stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 7}
        with client.stream("POST", "/v1/chat/completions", json=stream_body) as response:
            assert response.headers["content-type"] == "text/event-stream"
            events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
        assert events[-1] == "[DONE]"
        assert '"finish_reason": "length"' in events[-3]
        assert '"completion_tokens": 7' in events[-2]

        bad = client.put("/control", json={"ttft_median_s": -1, "nonsense": 1})
        assert bad.status_code == 400 and "nonsense" in bad.json()["error"]["message"]
        changed = client.put("/control", json={"error_rate": 1.0, "error_status": 503})
        assert changed.status_code == 200 and changed.json()["behaviour"]["error_status"] == 503
        failed = client.post("/v1/chat/completions", json=body)
        assert failed.status_code == 503
        assert failed.json()["error"]["type"] == "server_error"

        stats = server.stats()
        assert (stats.requests, stats.ok, stats.errors, stats.streamed) == (3, 2, 1, 1)
        assert stats.errors_by_status == {503: 1}
        assert server.sample(f"{DURATION}_count", error_type="503") == 1
        assert server.sample(f"{DURATION}_count", error_type="") == 2
        # The variant is Prometheus's business (a target label), never the server's.
        assert "variant" not in server.metrics_text()
    assert not server.running


def test_traffic_reaches_prometheus_with_variant_labels(
    request: pytest.FixtureRequest,
    prometheus: PrometheusServer,
    model_servers: ModelServers,
    traffic: Traffic,
) -> None:
    ns = label_namespace(request)
    servers = model_servers(
        ns,
        {
            "bot-v1": ServerSpec("v1", behaviour=Behaviour(ttft_median_s=0.15, quality_mean=0.9), seed=1),
            "bot-v2": ServerSpec(
                "v2", behaviour=Behaviour(ttft_median_s=0.45, error_rate=0.1, quality_mean=0.6), seed=2
            ),
        },
    )
    sent = traffic(weights={"bot-v1": 1, "bot-v2": 1}, rate=400, max_requests=800, seed=3).wait()
    assert sent.total_sent == 800 and not sent.transport_errors
    v1, v2 = servers["bot-v1"].stats(), servers["bot-v2"].stats()
    assert (v1.requests, v2.requests) == (sent.sent["bot-v1"], sent.sent["bot-v2"])
    assert v2.errors == sent.http_errors.get("bot-v2", 0) > 0 and v1.errors == 0

    sel = f'namespace="{ns}"'
    wait_counts(
        prometheus,
        f"sum by (variant) ({DURATION}_count{{{sel}}})",
        "variant",
        {"v1": v1.requests, "v2": v2.requests},
    )
    errors = prometheus.query_by(f'sum by (variant) ({DURATION}_count{{{sel}, error_type!=""}})', "variant")
    assert errors == {"v1": 0, "v2": v2.errors}
    assert prometheus.query_by(
        f'sum by (error_type) ({DURATION}_count{{{sel}, variant="v2"}})', "error_type"
    ) == {
        "": v2.ok,
        "500": v2.errors,
    }

    # Target labels come from the scrape config; the server's own labels come through unchanged.
    series = prometheus.query(f'{TTFT}_count{{{sel}, variant="v2"}}')
    assert len(series) == 1
    labels = series[0].labels
    assert labels["service"] == "bot-v2" and labels["gen_ai_request_model"] == "model-v2"
    assert labels["gen_ai_operation_name"] == "chat" and labels["instance"] == servers["bot-v2"].address

    for name, variant in (("bot-v1", "v1"), ("bot-v2", "v2")):
        buckets = prometheus.query_by(f'{TTFT}_bucket{{{sel}, variant="{variant}"}}', "le")
        own = {le: servers[name].sample(f"{TTFT}_bucket", le=le) for le in buckets}
        assert buckets == own, f"{variant}: Prometheus {buckets} != server {own}"
        assert {float(le) for le in buckets} == {*map(float, TTFT_BUCKETS), math.inf}

    # The scripted distributions come out of PromQL where they were put (within one bucket).
    p50 = prometheus.query_by(
        f"histogram_quantile(0.5, sum by (variant, le) ({TTFT}_bucket{{{sel}}}))", "variant"
    )
    assert 0.1 <= p50["v1"] <= 0.2 and 0.4 <= p50["v2"] <= 0.5, p50
    error_ratio = v2.errors / v2.requests
    assert abs(error_ratio - 0.1) <= 4 * math.sqrt(0.1 * 0.9 / v2.requests), error_ratio

    tokens = prometheus.query_by(
        f'sum by (gen_ai_token_type) ({TOKENS}_sum{{{sel}, variant="v1"}})', "gen_ai_token_type"
    )
    assert tokens == {"input": v1.input_tokens, "output": v1.output_tokens}
    results = prometheus.query_by(
        f"sum by (result) (llm_eval_results_total{{{sel}, variant='v2'}})", "result"
    )
    assert results == {"pass": v2.passed, "fail": v2.failed}
    judged = prometheus.query_value(f"sum(llm_eval_score_count{{{sel}}})")
    assert judged == v1.judged + v2.judged
    assert 0.1 * 800 * 0.5 < judged < 0.3 * 800  # ~20% of successful answers are judged
    scores = prometheus.query_by(
        f"sum by (variant) (llm_eval_score_sum{{{sel}}}) / sum by (variant) (llm_eval_score_count{{{sel}}})",
        "variant",
    )
    assert abs(scores["v1"] - 0.9) < 0.05 and abs(scores["v2"] - 0.6) < 0.05, scores


def test_behaviour_change_mid_test_changes_what_prometheus_sees(
    request: pytest.FixtureRequest,
    prometheus: PrometheusServer,
    model_servers: ModelServers,
    traffic: Traffic,
) -> None:
    ns = label_namespace(request)
    server = model_servers(ns, {"bot-v2": ServerSpec("v2", seed=4)})["bot-v2"]
    sel = f'namespace="{ns}", variant="v2"'

    def series(metric: str, extra: str = "") -> str:
        return f"{metric}{{{sel}{', ' + extra if extra else ''}}}"

    traffic(weights={"bot-v2": 1}, rate=400, max_requests=400).wait()
    wait_counts(prometheus, f"sum({series(DURATION + '_count')})", "", {"": 400})
    before, first = time.time(), server.stats()

    # Through the HTTP control API, as a test driving a rollout would do it.
    changes = {"ttft_median_s": 1.2, "error_rate": 0.3, "output_tokens": 600, "quality_mean": 0.5}
    changed = httpx.put(f"{server.url}/control", json=changes, timeout=5)
    assert changed.status_code == 200, changed.text
    traffic(weights={"bot-v2": 1}, rate=400, max_requests=400).wait()
    wait_counts(prometheus, f"sum({series(DURATION + '_count')})", "", {"": 800})
    second = server.stats()

    def then(metric: str, extra: str = "") -> str:
        """The series at `before`, i.e. the first phase only."""
        return f"({series(metric, extra)} @ {before:.3f})"

    def since(metric: str, extra: str = "") -> str:
        """What the second phase added."""
        return f"({series(metric, extra)} - {series(metric, extra)} @ {before:.3f})"

    p50_before = prometheus.query_value(f"histogram_quantile(0.5, sum by (le) {then(TTFT + '_bucket')})")
    p50_after = prometheus.query_value(f"histogram_quantile(0.5, sum by (le) {since(TTFT + '_bucket')})")
    assert p50_before is not None and 0.1 <= p50_before <= 0.2, p50_before
    assert p50_after is not None and 1.0 <= p50_after <= 1.5, p50_after

    failures = 'error_type!=""'
    assert prometheus.query_value(f"sum {then(DURATION + '_count', failures)}") == 0
    errors_after = prometheus.query_value(f"sum {since(DURATION + '_count', failures)}")
    assert errors_after == second.errors - first.errors
    assert 0.2 * 400 <= errors_after <= 0.4 * 400, errors_after

    output = 'gen_ai_token_type="output"'
    out_before = prometheus.query_value(
        f"sum {then(TOKENS + '_sum', output)} / sum {then(TOKENS + '_count', output)}"
    )
    out_after = prometheus.query_value(
        f"sum {since(TOKENS + '_sum', output)} / sum {since(TOKENS + '_count', output)}"
    )
    assert out_before is not None and abs(out_before - 150) < 3, out_before
    assert out_after is not None and abs(out_after - 600) < 3, out_after
    assert (
        prometheus.query_value(f"sum {since(TOKENS + '_sum', output)}")
        == second.output_tokens - first.output_tokens
    )

    score_after = prometheus.query_value(
        f"sum {since('llm_eval_score_sum')} / sum {since('llm_eval_score_count')}"
    )
    assert score_after is not None and abs(score_after - 0.5) < 0.05, score_after
    fail = 'result="fail"'
    failed = prometheus.query_value(f"sum {since('llm_eval_results_total', fail)}")
    judged = prometheus.query_value(f"sum {since('llm_eval_results_total')}")
    assert failed is not None and judged and failed / judged > 0.9, (failed, judged)


def test_split_follows_the_httproute_weights_and_their_change(
    kube: Kube,
    namespace: str,
    gateway_api: str,
    prometheus: PrometheusServer,
    model_servers: ModelServers,
    traffic: Traffic,
) -> None:
    # Not waiting for the first scrape: the counters are cumulative, so the final totals still match.
    model_servers(namespace, {"bot-v1": "v1", "bot-v2": "v2", "admin": "admin"}, wait=False)
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "support-bot", "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "rules": [
                {  # a more specific rule for another path must not be the one the chat traffic takes
                    "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                    "backendRefs": [{"name": "admin", "port": 8000}],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                    "backendRefs": [
                        {"name": "bot-v1", "port": 8000, "weight": 80},
                        {"name": "bot-v2", "port": 8000, "weight": 20},
                    ],
                },
            ],
        },
    }
    applied = kube.apply(route, namespace)
    assert applied.returncode == 0, applied.stderr

    generator = traffic(namespace, "support-bot", rate=300, max_requests=2400, duration=20, seed=5)
    assert generator.weights == {"bot-v1": 80, "bot-v2": 20}
    wait_for(lambda: generator.stats().total_sent >= 1000, timeout=10, what="1000 requests at 80/20")

    patch = [
        {"op": "replace", "path": "/spec/rules/1/backendRefs/0/weight", "value": 0},
        {"op": "replace", "path": "/spec/rules/1/backendRefs/1/weight", "value": 100},
    ]
    kube.kubectl("patch", "httproute", "support-bot", "-n", namespace, "--type=json", "-p", json.dumps(patch))
    patched_at = generator.stats().elapsed
    generator.wait_for_weights({"bot-v1": 0, "bot-v2": 100}, timeout=5)
    wait_for(
        lambda: generator.stats().sent_under({"bot-v2": 100}).get("bot-v2", 0) >= 600,
        timeout=10,
        what="600 requests at 0/100",
    )
    stats = generator.stop()

    assert stats.route_errors == 0 and stats.unroutable == 0 and not stats.unmapped, stats
    assert not stats.http_errors and not stats.transport_errors, stats
    assert sum(stats.ok.values()) == stats.total_sent
    assert "admin" not in stats.sent
    first = stats.sent_under({"bot-v1": 80, "bot-v2": 20})
    n = sum(first.values())
    share = first.get("bot-v2", 0) / n
    # Four standard deviations of a binomial share: a false failure about once in 16,000 runs.
    assert abs(share - 0.2) <= 4 * math.sqrt(0.2 * 0.8 / n), (share, first)
    second = stats.sent_under({"bot-v2": 100})
    assert second.get("bot-v1", 0) == 0 and second["bot-v2"] >= 600, second
    switch = next(e for e in stats.epochs if e.weights == {"bot-v1": 0, "bot-v2": 100})
    # Re-read every 0.5 s; the rest is the API server's and kubectl's latency.
    assert switch.since - patched_at < 2.0, (switch.since, patched_at)

    wait_counts(
        prometheus,
        f'sum by (variant) ({DURATION}_count{{namespace="{namespace}"}})',
        "variant",
        {"v1": stats.sent["bot-v1"], "v2": stats.sent["bot-v2"], "admin": 0},
    )


def test_prometheus_stops_and_starts_on_the_same_port_and_data(
    request: pytest.FixtureRequest,
    prometheus: PrometheusServer,
    model_servers: ModelServers,
    traffic: Traffic,
) -> None:
    ns = label_namespace(request)
    model_servers(ns, {"bot-v1": "v1"})
    selector = f'{DURATION}_count{{namespace="{ns}"}}'
    count = f"sum({selector})"
    traffic(weights={"bot-v1": 1}, rate=400, max_requests=100).wait()
    wait_counts(prometheus, count, "", {"": 100})
    scraped_before, address, pid = time.time(), prometheus.address, prometheus.pid

    prometheus.stop()
    assert not prometheus.running
    with pytest.raises(PrometheusError):
        prometheus.query("up")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{address}/-/ready", timeout=2)
    # Streaming this time, so the SSE path is on the metric path too.
    down = traffic(weights={"bot-v1": 1}, rate=400, max_requests=100, stream=True).wait()
    assert down.ok == {"bot-v1": 100}

    started = time.monotonic()
    prometheus.start()
    restart_seconds = time.monotonic() - started
    assert prometheus.address == address and prometheus.pid != pid
    assert restart_seconds < 10, restart_seconds
    # What was scraped before the outage survived it, and scraping resumed where it was.
    assert prometheus.query_value(f"sum({selector} @ {scraped_before:.3f})") == 100
    wait_counts(prometheus, count, "", {"": 200})


def test_without_eval_metrics_a_real_judge_scores_the_answers_and_counts_the_thumbs(tmp_path: Path) -> None:
    """The judge's path end to end without a cluster: answers carry their scripted quality and thumbs,
    the generator feeds the real `llmrollout judge`, and its /metrics say what was scripted."""
    good = ModelServer("bot-v1", "m1", Behaviour(thumbs_down_rate=0.1), seed=1, eval_metrics=False)
    bad = ModelServer(
        "bot-v2", "m2", Behaviour(quality_mean=0.4, thumbs_down_rate=0.7), seed=2, eval_metrics=False
    )
    with good, bad, JudgeProcess(tmp_path / "judge.log", ("v1", "v2"), sample_rate=1.0) as judge:
        assert "llm_eval" not in good.metrics_text()
        answer = httpx.post(
            good.url + "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "q"}]},
        ).json()["choices"][0]["message"]["content"]
        assert scripted(answer) is not None
        feed = JudgeFeed(judge.url, {"bot-v1": "v1", "bot-v2": "v2"}, sample=1.0, feedback=1.0, seed=1)
        generator = TrafficGenerator(
            {"bot-v1": 1, "bot-v2": 1},
            {"bot-v1": good.url, "bot-v2": bad.url},
            rate=100,
            max_requests=400,
            seed=1,
            judge=feed,
        )
        stats = generator.start().wait()
        assert stats.judge_errors == 0 and sum(stats.judged.values()) == stats.total_sent == 400

        def scored() -> bool:
            return (
                judge.sample("llm_eval_score_count") + judge.sample("llmrollout_judge_unscored_total") >= 400
            )

        wait_for(scored, 30, "every exchange scored")
        assert judge.sample("llmrollout_judge_unscored_total") == 0
        for variant, server, quality, down in (("v1", good, 0.9, 0.1), ("v2", bad, 0.4, 0.7)):
            judged = judge.sample("llm_eval_score_count", variant=variant)
            assert judged == stats.judged[server.name]
            assert judge.sample("llm_eval_score_sum", variant=variant) / judged == pytest.approx(
                quality, abs=0.05
            )
            ups = judge.sample("llm_feedback_total", variant=variant, value="up")
            downs = judge.sample("llm_feedback_total", variant=variant, value="down")
            assert (ups, downs) == (
                stats.thumbs.get(f"{server.name}/up", 0),
                stats.thumbs.get(f"{server.name}/down", 0),
            )
            assert downs / (ups + downs) == pytest.approx(down, abs=0.1)
        # Verdicts at the model servers' pass threshold: the good model passes, the bad one fails mostly.
        assert (
            judge.sample("llm_eval_results_total", variant="v1", result="pass") > 0.9 * stats.judged["bot-v1"]
        )
        assert (
            judge.sample("llm_eval_results_total", variant="v2", result="fail") > 0.9 * stats.judged["bot-v2"]
        )
