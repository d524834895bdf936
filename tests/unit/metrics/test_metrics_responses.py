"""Parsing Prometheus answers, and how the provider turns them into a Window (httpx.MockTransport)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from llmrollout.analysis.observations import Histogram
from llmrollout.api.spec import CustomSLO, Metrics
from llmrollout.metrics import (
    PRESETS,
    MetricsUnavailableError,
    UnknownMetricsProviderError,
    preset_named,
    provider_for,
)
from llmrollout.metrics.prometheus import BadResultError, PrometheusProvider, parse_histogram, parse_value

INF = math.inf


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {"resultType": "vector", "result": [{"metric": m, "value": [1700000000.0, v]} for m, v in samples]}


def buckets(*pairs: tuple[str, str]) -> dict[str, Any]:
    return vector(*(({"le": le}, value) for le, value in pairs))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (vector(), None),
        (vector(({}, "0")), 0.0),
        (vector(({}, "412")), 412.0),
        (vector(({"variant": "v2"}, "3.5e2")), 350.0),
        ({"resultType": "scalar", "result": [1700000000.0, "0.25"]}, 0.25),
    ],
)
def test_parse_value(data: dict[str, Any], expected: float | None) -> None:
    assert parse_value(data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (vector(({}, "NaN")), "NaN"),
        (vector(({}, "+Inf")), "inf"),
        (vector(({}, "-Inf")), "inf"),
        ({"resultType": "scalar", "result": [1700000000.0, "NaN"]}, "NaN"),
        (vector(({"a": "1"}, "1"), ({"a": "2"}, "2")), "2 series"),
        ({"resultType": "matrix", "result": []}, "matrix"),
        ({"resultType": "string", "result": [0, "x"]}, "string"),
        (vector(({}, "not a number")), "malformed"),
        ({"resultType": "vector", "result": [{"metric": {}}]}, "malformed"),
        ({"resultType": "vector", "result": None}, "malformed"),
    ],
)
def test_parse_value_refuses_unusable_answers(data: dict[str, Any], message: str) -> None:
    with pytest.raises(BadResultError, match=message):
        parse_value(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (vector(), None),
        (buckets(("+Inf", "10"), ("0.5", "4"), ("0.1", "1")), ((0.1, 1.0), (0.5, 4.0), (INF, 10.0))),
        (buckets(("+Inf", "0")), ((INF, 0.0),)),
        (buckets(("1e+00", "3"), ("2.5", "5"), ("+Inf", "5")), ((1.0, 3.0), (2.5, 5.0), (INF, 5.0))),
        # increase() extrapolates buckets one by one: a later bucket can come out a hair lower.
        (buckets(("0.1", "2.0004"), ("0.2", "2"), ("+Inf", "7")), ((0.1, 2.0004), (0.2, 2.0004), (INF, 7.0))),
    ],
)
def test_parse_histogram(data: dict[str, Any], expected: tuple[tuple[float, float], ...] | None) -> None:
    result = parse_histogram(data)
    assert result == (None if expected is None else Histogram(expected))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (buckets(("0.1", "1"), ("0.5", "4")), r"\+Inf"),
        (buckets(("0.1", "NaN"), ("+Inf", "4")), "NaN"),
        (buckets(("0.1", "1"), ("+Inf", "+Inf")), "inf"),
        (vector(({}, "4")), "le"),
        (vector(({"le": "fast"}, "4")), "le"),
        (vector(({"le": "NaN"}, "4")), "le"),
        (buckets(("1", "1"), ("1.0", "2"), ("+Inf", "2")), "two buckets"),
        ({"resultType": "scalar", "result": [0, "1"]}, "vector"),
    ],
)
def test_parse_histogram_refuses_unusable_answers(data: dict[str, Any], message: str) -> None:
    with pytest.raises(BadResultError, match=message):
        parse_histogram(data)


# --- the provider over a mock transport -----------------------------------------------------------

Answer = tuple[int, Any]


def mock_prometheus(answer: Callable[[str], Answer], seen: list[httpx.Request] | None = None) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        status, body = answer(request.url.params["query"])
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content)

    return httpx.Client(transport=httpx.MockTransport(handle))


def success(data: dict[str, Any]) -> Answer:
    return 200, {"status": "success", "data": data}


def by_metric(table: dict[str, dict[str, Any]]) -> Callable[[str], Answer]:
    """Answers with the data of the first table key found in the query; empty vector otherwise."""

    def answer(query: str) -> Answer:
        for needle, data in table.items():
            if needle in query:
                return success(data)
        return success(vector())

    return answer


def provider(client: httpx.Client, preset: str = "openTelemetryGenAI") -> PrometheusProvider:
    return PrometheusProvider(
        client, "http://prometheus.test:9090/prom/", PRESETS[preset], namespace="team-a"
    )


def test_read_fills_every_field_from_its_query() -> None:
    seen: list[httpx.Request] = []
    answers = by_metric(
        {
            'variant="v2",error_type!=""': vector(({}, "7")),
            "gen_ai_client_operation_duration_seconds_count": vector(({}, "400")),
            "gen_ai_server_time_to_first_token_seconds_bucket": buckets(("0.5", "300"), ("+Inf", "400")),
            "gen_ai_client_operation_duration_seconds_bucket": buckets(("+Inf", "400"), ("2", "390")),
            "llm_eval_score_sum": vector(({}, "330.5")),
            "llm_eval_score_count": vector(({}, "390")),
            'result="pass"': vector(({}, "350")),
            'result="fail"': vector(({}, "40")),
            'gen_ai_token_type="input"': vector(({}, "12000")),
            'gen_ai_token_type="output"': vector(({}, "NaN")),
            "refusals": vector(({}, "0.02")),
        }
    )
    slo = CustomSLO(name="refusals", query='sum(refusals{variant="{{variant}}"})', max=0.05)
    window = provider(mock_prometheus(answers, seen)).read(["v2"], 1000.0, 1060.0, [slo])

    v2 = window.variants["v2"]
    assert (window.start, window.end) == (1000.0, 1060.0)
    assert (v2.requests, v2.errors) == (400.0, 7.0)
    assert v2.ttft == Histogram(((0.5, 300.0), (INF, 400.0)))
    assert v2.latency == Histogram(((2.0, 390.0), (INF, 400.0)))
    assert (v2.eval_score_sum, v2.eval_score_count, v2.eval_passed, v2.eval_failed) == (330.5, 390, 350, 40)
    assert (v2.input_tokens, v2.output_tokens) == (12000.0, None)
    assert v2.custom == {"refusals": 0.02}
    assert len(window.problems) == 1
    assert window.problems[0].startswith("v2 output_tokens: the value is NaN (query: ")
    assert {r.url.path for r in seen} == {"/prom/api/v1/query"}
    assert {r.url.params["time"] for r in seen} == {"1060.000"}
    assert all("[60s]" in r.url.params["query"] for r in seen if "refusals" not in r.url.params["query"])


def test_missing_series_read_as_none_for_every_variant() -> None:
    window = provider(mock_prometheus(by_metric({}))).read(["v1", "v2"], 0.0, 30.0)
    assert set(window.variants) == {"v1", "v2"}
    for variant, observed in window.variants.items():
        assert observed.variant == variant
        assert observed.requests is None and observed.errors is None and observed.ttft is None
        assert observed.custom == {}
    assert window.problems == ()


def test_queries_carry_each_variant_and_nothing_else() -> None:
    seen: list[httpx.Request] = []
    provider(mock_prometheus(by_metric({}), seen)).read(["v1", "v2"], 0.0, 30.0)
    queries = [r.url.params["query"] for r in seen]
    assert len(queries) == 20
    assert sum('variant="v1"' in q for q in queries) == 10
    assert sum('variant="v2"' in q for q in queries) == 10


def test_custom_preset_sends_only_custom_queries() -> None:
    seen: list[httpx.Request] = []
    slo = CustomSLO(name="c", query='sum(x{variant="{{variant}}",ns="{{namespace}}"})', max=1)
    window = provider(mock_prometheus(by_metric({}), seen), "custom").read(["v1"], 0.0, 30.0, [slo])
    assert [r.url.params["query"] for r in seen] == ['sum(x{variant="v1",ns="team-a"})']
    assert window.variants["v1"].custom == {"c": None}


def test_a_rejected_query_is_a_problem_not_an_outage() -> None:
    def answer(query: str) -> Answer:
        if "broken" in query:
            return 400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 7"}
        return success(vector(({}, "5")))

    slos = [
        CustomSLO(name="broken", query='broken{variant="{{variant}}"} +', max=1),
        CustomSLO(name="unsafe", query="sum(x) by ({{variant}})", max=1),
        CustomSLO(name="fine", query='fine{variant="{{variant}}"}', max=1),
    ]
    window = provider(mock_prometheus(answer), "custom").read(["v2"], 0.0, 60.0, slos)
    assert window.variants["v2"].custom == {"broken": None, "unsafe": None, "fine": 5.0}
    assert len(window.problems) == 2
    assert "custom:unsafe" in window.problems[0] and "double-quoted" in window.problems[0]
    assert (
        "custom:broken: Prometheus rejected the query: bad_data: parse error at char 7" in window.problems[1]
    )


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (503, {"status": "error", "errorType": "unavailable", "error": "not ready"}, "HTTP 503.*not ready"),
        (422, {"status": "error", "errorType": "execution", "error": "too many samples"}, None),
        (401, b"Unauthorized", "did not answer like the Prometheus HTTP API"),
        (404, b"404 page not found", r"did not answer like the Prometheus HTTP API \(HTTP 404"),
        (200, b"<html>Grafana</html>", "did not answer like the Prometheus HTTP API"),
        (200, {"status": "success"}, "without data"),
        (502, {"status": "error", "error": "bad gateway"}, "HTTP 502"),
    ],
)
def test_http_answers(status: int, body: Any, message: str | None) -> None:
    client = mock_prometheus(lambda _query: (status, body))
    if message is None:
        window = provider(client).read(["v2"], 0.0, 60.0)
        assert window.variants["v2"].requests is None
        assert "too many samples" in window.problems[0]
        return
    with pytest.raises(MetricsUnavailableError, match=message):
        provider(client).read(["v2"], 0.0, 60.0)


def test_unreachable_prometheus_raises_with_address_but_no_credentials() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    guarded = PrometheusProvider(client, "http://admin:s3cret@prom.test:9090", PRESETS["vllm"], namespace="n")
    with pytest.raises(
        MetricsUnavailableError, match=r"http://prom.test:9090 is unreachable: ConnectError"
    ) as err:
        guarded.read(["v2"], 0.0, 60.0)
    assert "s3cret" not in str(err.value)


def test_a_bad_window_is_refused_before_any_query() -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(ValueError, match="window"):
        provider(mock_prometheus(by_metric({}), seen)).read(["v2"], 60.0, 60.0)
    assert seen == []


def test_factory_builds_the_preset_named_in_the_spec() -> None:
    spec = Metrics.model_validate(
        {
            "prometheus": {"address": "http://prometheus.monitoring:9090"},
            "preset": "litellm",
            "variantLabel": "requested_model",
            "labels": {"team": "a"},
        }
    )
    built = provider_for(spec, httpx.Client(), namespace="team-a")
    assert isinstance(built, PrometheusProvider)
    assert built.preset is PRESETS["litellm"]
    assert built.queries("v2", 0, 60)["requests"] == (
        'sum(increase(litellm_proxy_total_requests_metric_total{requested_model="v2",team="a"}[60s]))'
    )


def test_unknown_presets_raise() -> None:
    with pytest.raises(UnknownMetricsProviderError, match=r"istio.*known: custom, litellm"):
        preset_named("istio")
    statsd: Any = "statsd"  # not in the spec's Literal: a spec from a newer CRD
    spec = Metrics.model_construct(
        prometheus=Metrics.model_validate({"prometheus": {"address": "http://p:9090"}}).prometheus,
        preset=statsd,
        variant_label="variant",
        labels={},
    )
    with pytest.raises(UnknownMetricsProviderError, match="statsd"):
        provider_for(spec, httpx.Client(), namespace="n")


def test_labels_that_cannot_form_a_selector_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="label name"):
        PrometheusProvider(
            httpx.Client(), "http://p:9090", PRESETS["vllm"], namespace="n", labels={"a-b": "x"}
        )


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("http://u:p@prom.test:9090/x", "http://prom.test:9090/x"),
        ("https://token@prom.test", "https://prom.test"),
        ("http://prom.test:9090/a@b", "http://prom.test:9090/a@b"),
        ("http://u:p@prom.test:99999", "http://prom.test:99999"),
    ],
)
def test_messages_never_show_credentials(address: str, shown: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    with pytest.raises(MetricsUnavailableError) as err:
        PrometheusProvider(client, address, PRESETS["vllm"], namespace="n").read(["v"], 0.0, 60.0)
    assert str(err.value).startswith(f"Prometheus at {shown} is unreachable:")
