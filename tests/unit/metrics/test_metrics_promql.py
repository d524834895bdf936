"""Query rendering and escaping, by tables: everything that reaches Prometheus as PromQL text."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from llmrollout.analysis.observations import VariantWindow
from llmrollout.api.spec import CustomSLO
from llmrollout.metrics import PRESETS, TemplateError, check_template
from llmrollout.metrics.prometheus import HISTOGRAM_FIELDS, SCALAR_FIELDS, render_queries
from llmrollout.metrics.promql import Matcher, Series, duration, escape_string, render_template

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
        Series("up{}").selector((), "1m")


SEL = '{variant="v2",ns="team-a"}'
OTEL_V2 = {
    "requests": f"sum(increase(gen_ai_client_operation_duration_seconds_count{SEL}[60s]))",
    "errors": '(sum(increase(gen_ai_client_operation_duration_seconds_count{variant="v2",ns="team-a",'
    'error_type!=""}[60s])) or 0 * sum(increase(gen_ai_client_operation_duration_seconds_count'
    '{variant="v2",ns="team-a"}[60s])))',
    "ttft": 'sum by (le) (increase(gen_ai_server_time_to_first_token_seconds_bucket{variant="v2",ns="team-a"}'
    "[60s]))",
    "latency": f"sum by (le) (increase(gen_ai_client_operation_duration_seconds_bucket{SEL}[60s]))",
    "eval_score_sum": 'sum(increase(llm_eval_score_sum{variant="v2",ns="team-a"}[60s]))',
    "eval_score_count": 'sum(increase(llm_eval_score_count{variant="v2",ns="team-a"}[60s]))',
    "eval_passed": '(sum(increase(llm_eval_results_total{variant="v2",ns="team-a",result="pass"}[60s])) or '
    '0 * sum(increase(llm_eval_results_total{variant="v2",ns="team-a"}[60s])))',
    "eval_failed": '(sum(increase(llm_eval_results_total{variant="v2",ns="team-a",result="fail"}[60s])) or '
    '0 * sum(increase(llm_eval_results_total{variant="v2",ns="team-a"}[60s])))',
    "input_tokens": 'sum(increase(gen_ai_client_token_usage_sum{variant="v2",ns="team-a",'
    'gen_ai_token_type="input"}[60s]))',
    "output_tokens": 'sum(increase(gen_ai_client_token_usage_sum{variant="v2",ns="team-a",'
    'gen_ai_token_type="output"}[60s]))',
}

VLLM_ERRORS = (
    '(sum(increase(http_requests_total{variant="v2",ns="team-a",status=~"5.."}[60s])) or '
    '0 * sum(increase(vllm:request_success_total{variant="v2",ns="team-a"}[60s])))'
)


@pytest.mark.parametrize(
    ("preset", "field", "expected"),
    [
        *(("openTelemetryGenAI", k, v) for k, v in OTEL_V2.items()),
        (
            "vllm",
            "requests",
            'sum(increase(vllm:request_success_total{variant="v2",ns="team-a"}[60s])) + ' + VLLM_ERRORS,
        ),
        ("vllm", "errors", VLLM_ERRORS),
        (
            "vllm",
            "ttft",
            'sum by (le) (increase(vllm:time_to_first_token_seconds_bucket{variant="v2",ns="team-a"}[60s]))',
        ),
        (
            "vllm",
            "latency",
            'sum by (le) (increase(vllm:e2e_request_latency_seconds_bucket{variant="v2",ns="team-a"}[60s]))',
        ),
        ("vllm", "input_tokens", 'sum(increase(vllm:prompt_tokens_total{variant="v2",ns="team-a"}[60s]))'),
        (
            "vllm",
            "output_tokens",
            'sum(increase(vllm:generation_tokens_total{variant="v2",ns="team-a"}[60s]))',
        ),
        ("vllm", "eval_score_sum", OTEL_V2["eval_score_sum"]),
        (
            "litellm",
            "requests",
            'sum(increase(litellm_proxy_total_requests_metric_total{variant="v2",ns="team-a"}[60s]))',
        ),
        (
            "litellm",
            "errors",
            '(sum(increase(litellm_proxy_failed_requests_metric_total{variant="v2",ns="team-a"}[60s])) or '
            '0 * sum(increase(litellm_proxy_total_requests_metric_total{variant="v2",ns="team-a"}[60s])))',
        ),
        (
            "litellm",
            "ttft",
            "sum by (le) (increase(litellm_llm_api_time_to_first_token_metric_bucket"
            '{variant="v2",ns="team-a"}[60s]))',
        ),
        (
            "litellm",
            "latency",
            f"sum by (le) (increase(litellm_request_total_latency_metric_bucket{SEL}[60s]))",
        ),
        (
            "litellm",
            "input_tokens",
            'sum(increase(litellm_input_tokens_metric_total{variant="v2",ns="team-a"}[60s]))',
        ),
        (
            "litellm",
            "output_tokens",
            'sum(increase(litellm_output_tokens_metric_total{variant="v2",ns="team-a"}[60s]))',
        ),
        ("litellm", "eval_failed", OTEL_V2["eval_failed"]),
    ],
)
def test_preset_queries(preset: str, field: str, expected: str) -> None:
    queries = render_queries(PRESETS[preset], "v2", 60, labels={"ns": "team-a"}, namespace="team-a")
    assert queries[field] == expected


@pytest.mark.parametrize("preset", ["openTelemetryGenAI", "vllm", "litellm"])
def test_builtin_presets_read_every_field(preset: str) -> None:
    queries = render_queries(PRESETS[preset], "v2", 60, namespace="n")
    assert set(queries) == set(SCALAR_FIELDS) | set(HISTOGRAM_FIELDS)


def test_field_lists_match_variant_window() -> None:
    declared = {f.name for f in fields(VariantWindow)} - {"variant", "custom"}
    assert declared == set(SCALAR_FIELDS) | set(HISTOGRAM_FIELDS)


def test_custom_preset_reads_only_custom_queries() -> None:
    slo = CustomSLO(name="refusals", query='sum(x{v="{{variant}}"})', max=0.1)
    assert render_queries(PRESETS["custom"], "v2", 60, namespace="n", custom=[slo]) == {
        "custom:refusals": 'sum(x{v="v2"})'
    }


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
    query = render_queries(
        PRESETS["vllm"], "v2", 60, variant_label=variant_label, labels=labels, namespace="n"
    )
    assert query["input_tokens"] == f"sum(increase(vllm:prompt_tokens_total{expected_selector}[60s]))"


def test_extra_labels_cannot_override_the_variant_label() -> None:
    with pytest.raises(ValueError, match="variant label"):
        render_queries(PRESETS["vllm"], "v2", 60, labels={"variant": "v1"}, namespace="n")


@pytest.mark.parametrize("variant", HOSTILE)
def test_hostile_variant_stays_inside_its_label_value(variant: str) -> None:
    slo = CustomSLO(name="c", query='sum(rate(x{variant="{{variant}}"}[{{interval}}]))', max=1)
    queries = render_queries(
        PRESETS["openTelemetryGenAI"], variant, 60, labels={"ns": variant}, namespace=variant, custom=[slo]
    )
    for name, query in queries.items():
        # Removing every literal leaves only our own PromQL: the value added no code.
        code = re.sub(r'"((?:[^"\\\n]|\\.)*)"', '""', query)
        expected_code = re.sub(
            r'"((?:[^"\\\n]|\\.)*)"',
            '""',
            render_queries(
                PRESETS["openTelemetryGenAI"], "v", 60, labels={"ns": "v"}, namespace="v", custom=[slo]
            )[name],
        )
        assert code == expected_code, name
        assert variant in [unquote(body) for body in string_literals(query)] or variant == ""


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
