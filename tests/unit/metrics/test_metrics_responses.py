"""How the provider turns Prometheus answers into a Window (an in-memory TSDB behind httpx.MockTransport)."""

from __future__ import annotations

import json
import math
import re
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
from llmrollout.metrics.prometheus import (
    HISTOGRAM_FIELDS,
    SCALAR_FIELDS,
    BadResultError,
    PrometheusProvider,
    parse_value,
)
from llmrollout.metrics.promql import Matcher
from llmrollout.metrics.window import matches

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


# --- the provider over a mock transport -----------------------------------------------------------

Answer = tuple[int, Any]


def mock_prometheus(
    answer: Callable[[str, float], Answer], seen: list[httpx.Request] | None = None
) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        status, body = answer(request.url.params["query"], float(request.url.params["time"]))
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content)

    return httpx.Client(transport=httpx.MockTransport(handle))


def success(data: dict[str, Any]) -> Answer:
    return 200, {"status": "success", "data": data}


_MATCHER = re.compile(r'([a-zA-Z_]+)(=~|!~|!=|=)"((?:[^"\\]|\\.)*)"')
_BASELINE = re.compile(r"^last_over_time\(([a-zA-Z0-9_:]+)\{(.*)\}\[(\d+)s\]\)$")
_GROUP = re.compile(r"^group by \(job, instance\) \(last_over_time\(([a-zA-Z0-9_:]+)\{(.*)\}\[(\d+)s\]\)\)$")
_SAMPLES = re.compile(r"^([a-zA-Z0-9_:]+)\{(.*)\}\[(\d+)(s|ms)\]$")


class TSDB:
    """Raw samples per series, answering the two query shapes the provider sends for counters.

    The real Prometheus answers them in tests/e2e/test_metrics_prometheus.py; this one lets the
    provider's bookkeeping (which query at which time, how answers become fields) be checked by tables.
    """

    def __init__(self) -> None:
        self.series: list[tuple[dict[str, str], list[tuple[float, float]]]] = []

    def add(self, name: str, labels: dict[str, str], *samples: tuple[float, float]) -> None:
        self.series.append(({"__name__": name, **labels}, list(samples)))

    def _select(self, name: str, body: str) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        matchers = [
            Matcher(label, op, re.sub(r"\\(.)", r"\1", value))  # type: ignore[arg-type]
            for label, op, value in _MATCHER.findall(body)
        ]
        return [
            (labels, samples)
            for labels, samples in self.series
            if labels["__name__"] == name and all(matches(labels, m) for m in matchers)
        ]

    def answer(self, query: str, at: float) -> Answer:
        if found := _GROUP.match(query):
            name, body, seconds = found.groups()
            pairs = {
                (labels.get("job", ""), labels.get("instance", ""))
                for labels, samples in self._select(name, body)
                if any(at - int(seconds) <= t <= at for t, _ in samples)
            }
            result = [{"metric": {"job": j, "instance": i}, "value": [at, "1"]} for j, i in sorted(pairs)]
            return success({"resultType": "vector", "result": result})
        if found := _BASELINE.match(query):
            name, body, seconds = found.groups()
            result = []
            for labels, samples in self._select(name, body):
                before = [v for t, v in samples if at - int(seconds) <= t <= at]
                if before:
                    metric = {k: v for k, v in labels.items() if k != "__name__"}
                    result.append({"metric": metric, "value": [at, str(before[-1])]})
            return success({"resultType": "vector", "result": result})
        if found := _SAMPLES.match(query):
            name, body, amount, unit = found.groups()
            length = int(amount) / (1000 if unit == "ms" else 1)
            result = []
            for labels, samples in self._select(name, body):
                inside = [[t, str(v)] for t, v in samples if at - length <= t <= at]
                if inside:
                    result.append({"metric": labels, "values": inside})
            return success({"resultType": "matrix", "result": result})
        return success(vector())


def provider(client: httpx.Client, preset: str = "openTelemetryGenAI", **kwargs: Any) -> PrometheusProvider:
    return PrometheusProvider(
        client, "http://prometheus.test:9090/prom/", PRESETS[preset], namespace="team-a", **kwargs
    )


DURATION = "gen_ai_client_operation_duration_seconds"


def otel_tsdb() -> TSDB:
    db = TSDB()
    db.add("up", {}, (960, 1), (975, 1), (990, 1), (1005, 1), (1020, 1), (1035, 1))
    v2 = {"variant": "v2"}
    db.add(f"{DURATION}_count", {**v2, "error_type": ""}, (990, 100), (1005, 150), (1020, 300), (1035, 390))
    # The error series appears inside the window, with its first error: it counts from 0.
    db.add(f"{DURATION}_count", {**v2, "error_type": "timeout"}, (1020, 4), (1035, 7))
    for le, values in (("2", (90, 380)), ("+Inf", (100, 397))):
        db.add(f"{DURATION}_bucket", {**v2, "le": le}, (990, values[0]), (1035, values[1]))
    db.add("gen_ai_client_operation_time_to_first_chunk_seconds_bucket", {**v2, "le": "0.5"}, (1035, 300))
    db.add("gen_ai_client_operation_time_to_first_chunk_seconds_bucket", {**v2, "le": "+Inf"}, (1035, 390))
    db.add(
        "gen_ai_client_token_usage_token_sum", {**v2, "gen_ai_token_type": "input"}, (990, 10), (1035, 12010)
    )
    db.add("llm_eval_score_sum", v2, (990, 0.5), (1035, 331))
    db.add("llm_eval_score_count", v2, (990, 1), (1035, 391))
    for le, values in (("0.5", (0, 40)), ("+Inf", (1, 391))):
        db.add("llm_eval_score_bucket", {**v2, "le": le}, (990, values[0]), (1035, values[1]))
    db.add("llm_eval_results_total", {**v2, "result": "pass"}, (990, 0), (1035, 350))
    # Only thumbs up so far: the down series appears with the first one, so "none yet" reads 0.
    db.add("llm_feedback_total", {**v2, "value": "up"}, (990, 2), (1020, 7))
    return db


def test_read_computes_exact_increases_from_each_series() -> None:
    seen: list[httpx.Request] = []
    db = otel_tsdb()
    slo = CustomSLO(name="refusals", query='sum(refusals{variant="{{variant}}"})', max=0.05)
    window = provider(mock_prometheus(db.answer, seen), scrape_interval=15).read(
        ["v2"], 1000.0, 1030.0, [slo]
    )

    v2 = window.variants["v2"]
    assert (window.start, window.end, window.scrape_interval) == (1000.0, 1030.0, 15)
    # Samples up to 1030 count; the one at 990 is the baseline; 1035 belongs to the next window.
    assert (v2.requests, v2.errors) == (204.0, 4.0)
    # No bucket sample inside (1000, 1030]: the series exist, so the histogram reads 0, not missing.
    assert v2.latency == Histogram(((2.0, 0.0), (INF, 0.0)))
    assert v2.eval_score == Histogram(((0.5, 0.0), (INF, 0.0)))
    assert (v2.eval_passed, v2.eval_failed) == (0.0, 0.0)
    assert (v2.feedback_up, v2.feedback_down) == (5.0, 0.0)
    assert set(v2.missing) == {
        "ttft",
        "output_tokens",
        "input_tokens_per_request",
        "output_tokens_per_request",
    }
    next_window = provider(mock_prometheus(db.answer)).read(["v2"], 1030.0, 1060.0).variants["v2"]
    assert (next_window.requests, next_window.errors) == (93.0, 3.0)
    assert next_window.latency == Histogram(((2.0, 290.0), (INF, 297.0)))
    assert next_window.ttft == Histogram(((0.5, 300.0), (INF, 390.0)))  # the client-side TTFT
    assert next_window.found["ttft"] == "gen_ai_client_operation_time_to_first_chunk_seconds_bucket"
    assert next_window.input_tokens == 12000.0
    assert next_window.found["input_tokens"] == "gen_ai_client_token_usage_token_sum"
    assert (next_window.eval_score_sum, next_window.eval_score_count) == (330.5, 390.0)
    assert (next_window.eval_passed, next_window.eval_failed) == (350.0, 0.0)
    assert "output_tokens" in next_window.missing and "ttft" not in next_window.missing

    baselines = [r for r in seen if r.url.params["query"].startswith("last_over_time(")]
    ranges = [r for r in seen if r.url.params["query"].endswith("[30s]")]
    assert baselines and {r.url.params["time"] for r in baselines} == {"1000.000"}
    assert ranges and {r.url.params["time"] for r in ranges} == {"1030.000"}
    assert all("[3600s]" in r.url.params["query"] for r in baselines)
    assert {r.url.path for r in seen} == {"/prom/api/v1/query"}


def test_a_window_shorter_than_a_scrape_interval_is_not_empty() -> None:
    db = TSDB()
    stop, abort = ({"variant": "v2", "finished_reason": reason} for reason in ("stop", "abort"))
    db.add("vllm_request_success_total", stop, (900, 40), (960, 40), (1020, 52))
    db.add("vllm_request_success_total", abort, (900, 3), (960, 3), (1020, 9))
    reads = [
        provider(mock_prometheus(db.answer), "vllm").read(["v2"], start, start + 10).variants["v2"].requests
        for start in range(950, 1030, 10)
    ]
    # One scrape a minute, 10 s windows: the window holding the scrape gets all of it (aborts excluded).
    assert reads == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 12.0, 0.0]


def test_a_series_born_in_the_window_counts_from_0_only_on_a_target_scraped_before() -> None:
    db = TSDB()
    old, new = {"job": "j", "instance": "old:80"}, {"job": "j", "instance": "new:80"}
    db.add("up", old, (960, 1), (990, 1), (1020, 1))
    db.add("up", new, (1020, 1))  # a target Prometheus had not scraped before the window
    # On the old target the error series appears with its first 3 errors: all of them count.
    db.add(f"{DURATION}_count", {**old, "variant": "v2", "error_type": ""}, (990, 10), (1020, 20))
    db.add(f"{DURATION}_count", {**old, "variant": "v2", "error_type": "timeout"}, (1020, 3))
    # The new target's counters carry a history of 5000 requests and 700 errors: none is this window's.
    db.add(f"{DURATION}_count", {**new, "variant": "v2", "error_type": ""}, (1020, 5000), (1029, 5004))
    db.add(f"{DURATION}_count", {**new, "variant": "v2", "error_type": "timeout"}, (1020, 700), (1029, 701))
    v2 = provider(mock_prometheus(db.answer)).read(["v2"], 1000, 1030).variants["v2"]
    assert (v2.requests, v2.errors) == (13 + 5, 3 + 1)


def test_missing_error_series_are_named_never_zero() -> None:
    db = TSDB()
    labels = {"model_name": "v2", "finished_reason": "stop"}
    db.add("vllm:request_success_total", labels, (990, 10), (1020, 30))
    # vLLM's HTTP metrics carry no model_name: with variantLabel model_name they cannot be attributed.
    db.add("http_requests_total", {"status": "5xx", "handler": "/v1/chat/completions"}, (990, 0), (1020, 12))
    window = provider(mock_prometheus(db.answer), "vllm", variant_label="model_name").read(["v2"], 1000, 1030)
    v2 = window.variants["v2"]
    assert v2.errors is None
    assert v2.missing["errors"] == (
        'vllm:request_failure_total{model_name="v2"} or vllm_request_failure_total{model_name="v2"}'
        ' or http_requests_total{model_name="v2",status=~"5.."}'
    )
    assert v2.requests == 20.0  # the successes; failures add where their series exist
    assert window.problems == ()


def test_missing_series_read_as_none_for_every_variant() -> None:
    window = provider(mock_prometheus(TSDB().answer)).read(["v1", "v2"], 0.0, 30.0)
    assert set(window.variants) == {"v1", "v2"}
    for variant, observed in window.variants.items():
        assert observed.variant == variant
        assert observed.requests is None and observed.errors is None and observed.ttft is None
        assert observed.custom == {}
        assert set(observed.missing) == {*SCALAR_FIELDS, *HISTOGRAM_FIELDS}
    assert window.problems == ()


def test_resource_variant_is_joined_through_target_info() -> None:
    db = otel_tsdb()
    # The telemetry carries no variant label, only target_info does; our evaluator's series do.
    db.series = [
        ({k: v for k, v in labels.items() if k != "variant" or "eval" in labels["__name__"]}, samples)
        for labels, samples in db.series
    ]
    db.series = [
        ({**labels, "job": "app", "instance": "10.0.0.1:80"}, samples) for labels, samples in db.series
    ]
    db.add(
        f"{DURATION}_count",
        {"job": "app", "instance": "10.0.0.9:80", "error_type": ""},
        (990, 0),
        (1035, 999),
    )

    db.add("target_info", {"job": "app", "instance": "10.0.0.1:80", "variant": "v2"}, (990, 1), (1035, 1))
    db.add("target_info", {"job": "app", "instance": "10.0.0.9:80", "variant": "v1"}, (990, 1), (1035, 1))
    db.add("up", {"job": "app", "instance": "10.0.0.1:80"}, (990, 1), (1035, 1))
    resource = provider(mock_prometheus(db.answer), variant_from="resource")
    v2 = resource.read(["v2"], 1030, 1060).variants["v2"]
    assert (v2.requests, v2.errors, v2.eval_passed) == (93.0, 3.0, 350.0)  # not the other instance's 999
    nowhere = provider(mock_prometheus(lambda q, at: success(vector())), variant_from="resource")
    missing = nowhere.read(["v2"], 1030, 1060).variants["v2"].missing
    assert missing["requests"] == 'target_info{variant="v2"} (the OTel resource that names the variant)'


def test_missing_series_for_a_preflight() -> None:
    db = TSDB()
    # Seen 40 minutes ago, idle since: present. Errors never seen for v2: missing, named.
    db.add(f"{DURATION}_count", {"variant": "v2", "error_type": ""}, (1000, 5))
    db.add(f"{DURATION}_count", {"variant": "v1", "error_type": "timeout"}, (1000, 5))
    found = provider(mock_prometheus(db.answer), scrape_interval=30).missing_series(["v1", "v2"], 3400.0)
    assert "requests" not in found["v2"] and "errors" not in found["v2"]  # no error yet, beside its series
    assert "requests" not in found["v1"]
    assert found["v2"]["ttft"].startswith("gen_ai_server_time_to_first_token_seconds_bucket{")
    assert set(found["v1"]) == set(found["v2"])


def test_custom_preset_sends_only_custom_queries() -> None:
    seen: list[httpx.Request] = []
    slo = CustomSLO(name="c", query='sum(x{variant="{{variant}}",ns="{{namespace}}"})', max=1)
    window = provider(mock_prometheus(TSDB().answer, seen), "custom").read(["v1"], 0.0, 30.0, [slo])
    assert [r.url.params["query"] for r in seen] == ['sum(x{variant="v1",ns="team-a"})']
    assert window.variants["v1"].custom == {"c": None}


def test_a_rejected_query_is_a_problem_not_an_outage() -> None:
    def answer(query: str, at: float) -> Answer:
        if "broken" in query:
            return 400, {
                "status": "error",
                "errorType": "bad_data",
                "error": "parse error at char 7" + "!" * 999,
            }
        return success(vector(({}, "5")))

    slos = [
        CustomSLO(name="broken", query='broken{variant="{{variant}}"} +', max=1),
        CustomSLO(name="unsafe", query="sum(x) by ({{variant}})", max=1),
        CustomSLO(name="fine", query='fine{variant="{{variant}}"}', max=1),
    ]
    window = provider(mock_prometheus(answer), "custom").read(["v2"], 0.0, 60.0, slos)
    assert window.variants["v2"].custom == {"broken": None, "unsafe": None, "fine": 5.0}
    assert len(window.problems) == 2
    unsafe = next(p for p in window.problems if "custom:unsafe" in p)
    assert "double-quoted" in unsafe
    broken = next(p for p in window.problems if "custom:broken" in p)
    assert "Prometheus rejected the query: bad_data: parse error at char 7" in broken
    assert len(broken) < 400  # the server's text is cut to 256 characters


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (503, {"status": "error", "errorType": "unavailable", "error": "not ready"}, "HTTP 503.*not ready"),
        (422, {"status": "error", "errorType": "execution", "error": "too many samples"}, None),
        (401, b"Unauthorized", r"refused the query \(HTTP 401 Unauthorized\) without credentials"),
        (404, b"404 page not found", r"did not answer like the Prometheus HTTP API \(HTTP 404"),
        (200, b"<html>Grafana</html>", "did not answer like the Prometheus HTTP API"),
        (200, {"status": "success"}, "without data"),
        (502, {"status": "error", "error": "bad gateway"}, "HTTP 502"),
    ],
)
def test_http_answers(status: int, body: Any, message: str | None) -> None:
    client = mock_prometheus(lambda _query, _at: (status, body))
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
        provider(mock_prometheus(TSDB().answer, seen)).read(["v2"], 60.0, 60.0)
    assert seen == []


def test_factory_builds_the_preset_named_in_the_spec() -> None:
    spec = Metrics.model_validate(
        {
            "prometheus": {"address": "http://prometheus.monitoring:9090"},
            "preset": "litellm",
            "labels": {"team": "a"},
        }
    )
    built = provider_for(spec, httpx.Client(), namespace="team-a")
    assert isinstance(built, PrometheusProvider)
    assert built.preset is PRESETS["litellm"]
    assert built.queries("v2")["requests"] == (
        'litellm_proxy_total_requests_metric_total{requested_model="v2",team="a"}'
    )
    assert built.scrape_interval == 60.0
    assert (built.variant_label, built.variant_from, built.query_offset) == ("requested_model", "label", 1.0)
    resource = Metrics.model_validate(
        {"prometheus": {"address": "http://p:9090", "scrapeInterval": "15s"}, "variantFrom": "resource"}
    )
    built = provider_for(resource, httpx.Client(), namespace="team-a")
    assert isinstance(built, PrometheusProvider)
    assert (built.variant_label, built.variant_from, built.scrape_interval) == ("variant", "resource", 15.0)


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
