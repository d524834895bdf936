"""Query rendering and escaping, by tables: everything that reaches Prometheus as PromQL text."""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

import httpx
import pytest

from llmrollout.analysis.observations import VariantWindow
from llmrollout.api.spec import CustomSLO, Metrics
from llmrollout.metrics import PRESETS, TemplateError, check_template
from llmrollout.metrics.prometheus import HISTOGRAM_FIELDS, SCALAR_FIELDS, PrometheusProvider
from llmrollout.metrics.promql import (
    Matcher,
    Metric,
    baseline_query,
    duration,
    escape_string,
    regex_literal,
    render_template,
    samples_query,
    scraped_targets_query,
    selector,
    targets_query,
    variant_matchers,
)

HOSTILE = [
    'v2"} or vector(1) or {x="',
    "back\\slash",
    "ends with backslash\\",
    '\\"} or vector(1) #',
    "new\nline",
    "carriage\rreturn\ttab",
    "nul\x00del\x7f",
    "{{namespace}}",
    "{{variant}}{{interval}}",
    "it's `raw`",
    "ünïcødé ✓",
    "",
]

# PromQL's string escapes (Go's), decoded independently of the code under test.
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|[abfnrtv\\\"'])")
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def unquote(body: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] == "x":
            return chr(int(code[1:], 16))
        return _SIMPLE.get(code, code)

    return _ESCAPE.sub(one, body)


def string_literals(query: str, quote: str = '"') -> list[str]:
    """The bodies of `quote`d literals, as a PromQL lexer would delimit them."""
    pattern = re.compile(quote + r"((?:[^" + quote + r"\\\n]|\\.)*)" + quote)
    return pattern.findall(query)


@pytest.mark.parametrize(
    ("value", "quote", "expected"),
    [
        ("v2", '"', "v2"),
        ('a"b', '"', 'a\\"b'),
        ("a\\b", '"', "a\\\\b"),
        ('\\"', '"', '\\\\\\"'),
        ("a'b", '"', "a'b"),
        ("a'b", "'", "a\\'b"),
        ('a"b', "'", 'a"b'),
        ("a\nb", '"', "a\\nb"),
        ("\t\r\a\b\f\v", '"', "\\t\\r\\a\\b\\f\\v"),
        ("\x00\x1f\x7f", '"', "\\x00\\x1f\\x7f"),
        ("a`b", '"', "a`b"),
        ("ü✓", '"', "ü✓"),
        ("", '"', ""),
    ],
)
def test_escape_string(value: str, quote: str, expected: str) -> None:
    assert escape_string(value, quote) == expected


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("quote", ['"', "'"])
def test_escaped_value_stays_one_literal_and_reads_back(value: str, quote: str) -> None:
    text = f"{quote}{escape_string(value, quote)}{quote}"
    assert string_literals(text, quote) == [escape_string(value, quote)]
    assert unquote(escape_string(value, quote)) == value
    assert "\n" not in text


def test_escape_string_refuses_raw_strings() -> None:
    with pytest.raises(ValueError, match="quoted"):
        escape_string("x", "`")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (60, "60s"),
        (60.0, "60s"),
        (1, "1s"),
        (3600, "3600s"),
        (1.5, "1500ms"),
        (0.001, "1ms"),
        (59.9996, "60s"),
    ],
)
def test_duration(seconds: float, expected: str) -> None:
    assert duration(seconds) == expected


@pytest.mark.parametrize("seconds", [0, -1, 0.0001, float("nan"), float("inf")])
def test_duration_refuses_empty_or_unbounded_windows(seconds: float) -> None:
    with pytest.raises(ValueError, match="window"):
        duration(seconds)


def test_selector_refuses_bad_label_and_metric_names() -> None:
    with pytest.raises(ValueError, match="label name"):
        Matcher('a"b', "=", "x").render()
    with pytest.raises(ValueError, match="metric name"):
        selector("up{}", ())
    with pytest.raises(ValueError, match="metric name"):
        Metric(("ok", "not ok"))


V2 = (Matcher("variant", "=", "v2"), Matcher("ns", "=", "team-a"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            baseline_query("vllm:request_success_total", V2, 3600),
            'last_over_time(vllm:request_success_total{variant="v2",ns="team-a"}[3600s])',
        ),
        (samples_query("x_bucket", V2, 30), 'x_bucket{variant="v2",ns="team-a"}[30s]'),
        (samples_query("x", V2, 0.25), 'x{variant="v2",ns="team-a"}[250ms]'),
        (
            scraped_targets_query([("app", "10.0.0.1:80"), ("app", "b:80")], 3600),
            "group by (job, instance) (last_over_time("
            'up{job=~"app",instance=~"10\\\\.0\\\\.0\\\\.1:80|b:80"}[3600s]))',
        ),
        (
            targets_query(V2, 90),
            'group by (job, instance) (last_over_time(target_info{variant="v2",ns="team-a"}[90s]))',
        ),
    ],
)
def test_window_queries(query: str, expected: str) -> None:
    assert query == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.1:8000", r"10\\.0\\.0\\.1:8000"),
        ("a|b", r"a\\|b"),
        ("(x)*", r"\\(x\\)\\*"),
        ("plain", "plain"),
    ],
)
def test_regex_literal(value: str, expected: str) -> None:
    # As rendered in a matcher: the regex's backslashes are escaped once more inside the string.
    assert Matcher("instance", "=~", regex_literal(value)).render() == f'instance=~"{expected}"'
    assert re.fullmatch(regex_literal(value), value)
    assert not re.fullmatch(regex_literal(value), value + "x")


def selectors(preset: str, **kwargs: Any) -> dict[str, str]:
    provider = PrometheusProvider(httpx.Client(), "http://p:9090", PRESETS[preset], namespace="n", **kwargs)
    return provider.queries("v2")


SEL = '{variant="v2",ns="team-a"}'


@pytest.mark.parametrize(
    ("preset", "field", "expected"),
    [
        ("openTelemetryGenAI", "requests", f"gen_ai_client_operation_duration_seconds_count{SEL}"),
        (
            "openTelemetryGenAI",
            "errors",
            'gen_ai_client_operation_duration_seconds_count{variant="v2",ns="team-a",error_type!=""}',
        ),
        (
            "openTelemetryGenAI",
            "ttft",
            f"gen_ai_server_time_to_first_token_seconds_bucket{SEL}"
            f" or gen_ai_client_operation_time_to_first_chunk_seconds_bucket{SEL}",
        ),
        (
            "openTelemetryGenAI",
            "output_tokens",
            'gen_ai_client_token_usage_sum{variant="v2",ns="team-a",gen_ai_token_type="output"}'
            ' or gen_ai_client_token_usage_token_sum{variant="v2",ns="team-a",gen_ai_token_type="output"}',
        ),
        (
            "openTelemetryGenAI",
            "eval_passed",
            'llm_eval_results_total{variant="v2",ns="team-a",result="pass"}',
        ),
        (
            "vllm",
            "requests",
            'vllm:request_success_total{variant="v2",ns="team-a",finished_reason!~"abort|error"}'
            ' or vllm_request_success_total{variant="v2",ns="team-a",finished_reason!~"abort|error"}'
            f" + vllm:request_failure_total{SEL} or vllm_request_failure_total{SEL}"
            ' or http_requests_total{variant="v2",ns="team-a",status=~"5.."}',
        ),
        (
            "vllm",
            "errors",
            f"vllm:request_failure_total{SEL} or vllm_request_failure_total{SEL}"
            ' or http_requests_total{variant="v2",ns="team-a",status=~"5.."}',
        ),
        (
            "vllm",
            "ttft",
            f"vllm:time_to_first_token_seconds_bucket{SEL} or vllm_time_to_first_token_seconds_bucket{SEL}",
        ),
        ("sglang", "requests", f"sglang:num_requests_total{SEL} or sglang_num_requests_total{SEL}"),
        ("sglang", "errors", 'http_requests_total{variant="v2",ns="team-a",status=~"5.."}'),
        ("litellm", "requests", f"litellm_proxy_total_requests_metric_total{SEL}"),
        (
            "litellm",
            "errors",
            'litellm_proxy_total_requests_metric_total{variant="v2",ns="team-a",status_code=~"5..|408"}'
            ' or litellm_proxy_failed_requests_metric_total{variant="v2",ns="team-a",'
            'exception_status=~"5..|408"}',
        ),
        ("litellm", "latency", f"litellm_request_total_latency_metric_bucket{SEL}"),
    ],
)
def test_preset_series(preset: str, field: str, expected: str) -> None:
    assert selectors(preset, variant_label="variant", labels={"ns": "team-a"})[field] == expected


@pytest.mark.parametrize(
    ("preset", "label", "metric"),
    [
        ("litellm", "requested_model", "litellm_proxy_total_requests_metric_total"),
        ("vllm", "variant", "vllm:request_success_total"),
    ],
)
def test_each_preset_has_its_variant_label(preset: str, label: str, metric: str) -> None:
    assert selectors(preset)["requests"].startswith(f'{metric}{{{label}="v2"')
    spec = Metrics.model_validate({"prometheus": {"address": "http://p:9090"}, "preset": preset})
    assert spec.effective_variant_label == label == PRESETS[preset].variant_label


def test_resource_variant_reads_through_target_info_except_our_own_series() -> None:
    queries = selectors("openTelemetryGenAI", variant_from="resource", labels={"ns": "team-a"})
    assert queries["requests"] == (
        'gen_ai_client_operation_duration_seconds_count{ns="team-a"} on(job, instance) of '
        'group by (job, instance) (last_over_time(target_info{variant="v2",ns="team-a"}[3600s]))'
    )
    assert queries["eval_passed"] == 'llm_eval_results_total{variant="v2",ns="team-a",result="pass"}'


# LiteLLM counts tokens in counters only: no histogram of tokens per request.
TOKEN_HISTOGRAMS = {"input_tokens_per_request", "output_tokens_per_request"}


@pytest.mark.parametrize(
    ("preset", "without"),
    [("openTelemetryGenAI", set()), ("vllm", set()), ("sglang", set()), ("litellm", TOKEN_HISTOGRAMS)],
)
def test_builtin_presets_read_every_field(preset: str, without: set[str]) -> None:
    assert set(selectors(preset)) == (set(SCALAR_FIELDS) | set(HISTOGRAM_FIELDS)) - without


def test_token_histograms_select_the_token_type() -> None:
    queries = selectors("openTelemetryGenAI")
    assert 'gen_ai_token_type="output"' in queries["output_tokens_per_request"]
    assert "gen_ai_client_token_usage_bucket" in queries["output_tokens_per_request"]
    assert 'gen_ai_token_type="input"' in queries["input_tokens_per_request"]
    assert "request_generation_tokens_bucket" in selectors("vllm")["output_tokens_per_request"]


def test_field_lists_match_variant_window() -> None:
    declared = {f.name for f in fields(VariantWindow)} - {"variant", "custom", "missing", "found"}
    assert declared == set(SCALAR_FIELDS) | set(HISTOGRAM_FIELDS)


def test_custom_preset_reads_no_builtin_series() -> None:
    assert selectors("custom") == {}


@pytest.mark.parametrize(
    ("variant_label", "labels", "expected_selector"),
    [
        ("variant", {}, '{variant="v2"}'),
        ("model_name", {}, '{model_name="v2"}'),
        ("variant", {"zone": "b", "app": "bot"}, '{variant="v2",app="bot",zone="b"}'),
        ("variant", {"namespace": 'x"}or{'}, '{variant="v2",namespace="x\\"}or{"}'),
    ],
)
def test_variant_label_and_extra_labels(
    variant_label: str, labels: dict[str, str], expected_selector: str
) -> None:
    query = selectors("vllm", variant_label=variant_label, labels=labels)["input_tokens"]
    assert query.startswith(f"vllm:prompt_tokens_total{expected_selector}")


def test_extra_labels_cannot_override_the_variant_label() -> None:
    with pytest.raises(ValueError, match="variant label"):
        selectors("vllm", labels={"variant": "v1"})


@pytest.mark.parametrize("variant", HOSTILE)
def test_hostile_variant_stays_inside_its_label_value(variant: str) -> None:
    matchers = variant_matchers("variant", variant, {"ns": variant})
    plain = variant_matchers("variant", "v", {"ns": "v"})
    for render in (
        lambda m: baseline_query("x_total", m, 60),
        lambda m: samples_query("x_bucket", m, 30),
        lambda m: targets_query(m, 30),
    ):
        query = render(matchers)
        # Removing every literal leaves only our own PromQL: the value added no code.
        code = re.sub(r'"((?:[^"\\\n]|\\.)*)"', '""', query)
        assert code == re.sub(r'"((?:[^"\\\n]|\\.)*)"', '""', render(plain))
        assert variant in [unquote(body) for body in string_literals(query)] or variant == ""
    slo = CustomSLO(name="c", query='sum(rate(x{variant="{{variant}}"}[{{interval}}]))', max=1)
    rendered = render_template(slo.query, variant=variant, namespace=variant, interval="60s")
    assert variant in [unquote(body) for body in string_literals(rendered)] or variant == ""


@pytest.mark.parametrize(
    ("template", "variant", "namespace", "expected"),
    [
        (
            'sum(rate(refusals_total{variant="{{variant}}",namespace="{{namespace}}"}[{{interval}}]))',
            "v2",
            "team-a",
            'sum(rate(refusals_total{variant="v2",namespace="team-a"}[5m0s]))',
        ),
        ("x{variant='{{variant}}'}", "it's", "n", "x{variant='it\\'s'}"),
        ('x{variant="{{variant}}"}', 'a"b\\', "n", 'x{variant="a\\"b\\\\"}'),
        ('x{variant="{{variant}}"}', "{{namespace}}", "team-a", 'x{variant="{{namespace}}"}'),
        ('x{variant="{{variant}}"}', "{{interval}}", "n", 'x{variant="{{interval}}"}'),
        ('x{variant="pre-{{variant}}-post"}', "v2", "n", 'x{variant="pre-v2-post"}'),
        ('x{variant=~"{{variant}}|{{variant}}-canary"}', "v2", "n", 'x{variant=~"v2|v2-canary"}'),
        (
            'x{variant="{{variant}}"} # for {{variant}}',
            "a\nvector(1)",
            "n",
            'x{variant="a\\nvector(1)"} # for a\\nvector(1)',
        ),
        ('x{a="\\\\", variant="{{variant}}"}', "v2", "n", 'x{a="\\\\", variant="v2"}'),
        ('x{a="\\"", variant="{{variant}}"}', "v2", "n", 'x{a="\\"", variant="v2"}'),
        ('x{a=`"`, variant="{{variant}}"}', "v2", "n", 'x{a=`"`, variant="v2"}'),
        ('x{a="#", variant="{{variant}}"}', "v2", "n", 'x{a="#", variant="v2"}'),
        (
            'x{variant="{{variant}}"}\n# c\n/ y{ns="{{namespace}}"}',
            "v",
            "n",
            'x{variant="v"}\n# c\n/ y{ns="n"}',
        ),
        ('x{variant="{{variant}}", s="{{interval}}"}', "v", "n", 'x{variant="v", s="5m0s"}'),
    ],
)
def test_render_template(template: str, variant: str, namespace: str, expected: str) -> None:
    assert render_template(template, variant=variant, namespace=namespace, interval="5m0s") == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("sum(x) by ({{variant}})", "double-quoted"),
        ('x{variant="v"} / {{namespace}}', "double-quoted"),
        ("x{variant=`{{variant}}`}", "raw string"),
        ('x{variant="\\{{variant}}"}', "backslash"),
        ('x{a="}"} + {{variant}}', "double-quoted"),
    ],
)
def test_unsafe_placeholders_are_refused(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        check_template(template)


def test_an_escaped_quote_does_not_end_the_string() -> None:
    check_template('x{a="\\"} + {{variant}}"}')


def test_interval_may_stand_anywhere() -> None:
    assert (
        render_template("rate(x[{{interval}}])", variant="v", namespace="n", interval="60s") == "rate(x[60s])"
    )
