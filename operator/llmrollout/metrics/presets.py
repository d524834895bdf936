"""Which series each preset reads: data only (see promql.py for how it becomes PromQL).

Every query also carries `{<variantLabel>="<variant>"}` and the spec's `metrics.labels`.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmrollout.metrics.promql import Buckets, Count, Matcher, Series, count


@dataclass(frozen=True)
class Preset:
    name: str
    requests: Count | None = None
    errors: Count | None = None
    ttft: Buckets | None = None
    latency: Buckets | None = None
    eval_score_sum: Count | None = None
    eval_score_count: Count | None = None
    eval_passed: Count | None = None
    eval_failed: Count | None = None
    input_tokens: Count | None = None
    output_tokens: Count | None = None


# llmrollout's own eval metrics (no standard exists): a histogram of scores in [0, 1] and a counter
# of pass/fail verdicts. The same names in every preset, since our evaluator emits them.
_EVAL = {
    "eval_score_sum": count("llm_eval_score_sum"),
    "eval_score_count": count("llm_eval_score_count"),
    "eval_passed": count(
        "llm_eval_results_total", Matcher("result", "=", "pass"), zero_with="llm_eval_results_total"
    ),
    "eval_failed": count(
        "llm_eval_results_total", Matcher("result", "=", "fail"), zero_with="llm_eval_results_total"
    ),
}

_OTEL_DURATION = "gen_ai_client_operation_duration_seconds"
OPEN_TELEMETRY_GEN_AI = Preset(
    name="openTelemetryGenAI",
    requests=count(f"{_OTEL_DURATION}_count"),
    # OTel marks a failed operation by setting error.type on its duration measurement.
    errors=count(
        f"{_OTEL_DURATION}_count", Matcher("error_type", "!=", ""), zero_with=f"{_OTEL_DURATION}_count"
    ),
    ttft=Buckets(Series("gen_ai_server_time_to_first_token_seconds_bucket")),
    latency=Buckets(Series(f"{_OTEL_DURATION}_bucket")),
    input_tokens=count("gen_ai_client_token_usage_sum", Matcher("gen_ai_token_type", "=", "input")),
    output_tokens=count("gen_ai_client_token_usage_sum", Matcher("gen_ai_token_type", "=", "output")),
    **_EVAL,
)

# vLLM counts only finished requests; failures show up in the HTTP server's metrics, whose status
# label is "5xx" with the default instrumentator grouping and "500".."599" without it.
_VLLM_SUCCESS = "vllm:request_success_total"
_VLLM_ERRORS = count("http_requests_total", Matcher("status", "=~", "5.."), zero_with=_VLLM_SUCCESS)
VLLM = Preset(
    name="vllm",
    requests=Count((*count(_VLLM_SUCCESS).terms, *_VLLM_ERRORS.terms)),
    errors=_VLLM_ERRORS,
    ttft=Buckets(Series("vllm:time_to_first_token_seconds_bucket")),
    latency=Buckets(Series("vllm:e2e_request_latency_seconds_bucket")),
    input_tokens=count("vllm:prompt_tokens_total"),
    output_tokens=count("vllm:generation_tokens_total"),
    **_EVAL,
)

_LITELLM_REQUESTS = "litellm_proxy_total_requests_metric_total"
LITELLM = Preset(
    name="litellm",
    requests=count(_LITELLM_REQUESTS),
    errors=count("litellm_proxy_failed_requests_metric_total", zero_with=_LITELLM_REQUESTS),
    # LiteLLM records TTFT for streaming requests only.
    ttft=Buckets(Series("litellm_llm_api_time_to_first_token_metric_bucket")),
    latency=Buckets(Series("litellm_request_total_latency_metric_bucket")),
    input_tokens=count("litellm_input_tokens_metric_total"),
    output_tokens=count("litellm_output_tokens_metric_total"),
    **_EVAL,
)

# Only the spec's custom SLO queries; every built-in field reads as missing.
CUSTOM = Preset(name="custom")

PRESETS: dict[str, Preset] = {p.name: p for p in (OPEN_TELEMETRY_GEN_AI, VLLM, LITELLM, CUSTOM)}
