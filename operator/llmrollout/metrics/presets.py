"""Which series each preset reads: data only (see window.py for how a window is computed from them).

Every query also carries the variant's selector (`{<variantLabel>="<variant>"}`, or the OTel resource
through target_info) and the spec's `metrics.labels`. Names and labels are those of the real exporters:
vLLM from `vllm/v1/metrics/loggers.py` (v0.10), SGLang from `sglang/srt/metrics/collector.py`, LiteLLM
from `litellm/integrations/prometheus.py`, OTel from the GenAI semantic conventions as the Prometheus
exporter and the Collector name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmrollout.metrics.promql import Buckets, Count, Matcher, Metric, Source, Term, count, names


@dataclass(frozen=True)
class Preset:
    name: str
    # The label that tells variants apart when the spec names none (metrics.variantLabel).
    variant_label: str = "variant"
    requests: Term | Count | None = None
    errors: Term | Count | None = None
    ttft: Buckets | None = None
    latency: Buckets | None = None
    eval_score: Buckets | None = None
    eval_score_sum: Term | None = None
    eval_score_count: Term | None = None
    eval_passed: Term | None = None
    eval_failed: Term | None = None
    input_tokens: Term | None = None
    output_tokens: Term | None = None
    input_tokens_per_request: Buckets | None = None
    output_tokens_per_request: Buckets | None = None
    feedback_up: Term | None = None
    feedback_down: Term | None = None


def buckets(*metrics: str | Metric, where: tuple[Matcher, ...] = ()) -> Buckets:
    """The first of `metrics` (in order) that has series for the variant."""
    return Buckets(tuple(Source(Metric((m,)) if isinstance(m, str) else m, where) for m in metrics))


# llmrollout's own eval metrics (no standard exists): a histogram of scores in [0, 1] and a counter
# of pass/fail verdicts. The same names in every preset, since our evaluator emits them; a verdict
# series appears with its first verdict, so the other verdict's series makes "none yet" a zero. User
# feedback comes through the same evaluator (`llmrollout judge`, POST /v1/feedback).
_EVAL: dict[str, Any] = {
    "eval_score": buckets("llm_eval_score_bucket"),
    "eval_score_sum": count("llm_eval_score_sum"),
    "eval_score_count": count("llm_eval_score_count"),
    "eval_passed": count("llm_eval_results_total", Matcher("result", "=", "pass"), zero_when="metric"),
    "eval_failed": count("llm_eval_results_total", Matcher("result", "=", "fail"), zero_when="metric"),
    "feedback_up": count("llm_feedback_total", Matcher("value", "=", "up"), zero_when="metric"),
    "feedback_down": count("llm_feedback_total", Matcher("value", "=", "down"), zero_when="metric"),
}

_OTEL_DURATION = "gen_ai_client_operation_duration_seconds"
# The token histogram's unit is `{token}` (dropped in Prometheus names) in the conventions, but
# instrumentations that declare unit `token` (OpenLLMetry) get the `_token` suffix.
_OTEL_TOKENS = names("gen_ai_client_token_usage_sum", "gen_ai_client_token_usage_token_sum")
_OTEL_TOKEN_BUCKETS = names("gen_ai_client_token_usage_bucket", "gen_ai_client_token_usage_token_bucket")
OPEN_TELEMETRY_GEN_AI = Preset(
    name="openTelemetryGenAI",
    requests=count(f"{_OTEL_DURATION}_count"),
    # OTel marks a failed operation by setting error.type on its duration measurement.
    errors=count(f"{_OTEL_DURATION}_count", Matcher("error_type", "!=", ""), zero_when="metric"),
    # Server-side TTFT where a server reports it, else the client-side time to the first streamed chunk.
    ttft=buckets(
        "gen_ai_server_time_to_first_token_seconds_bucket",
        "gen_ai_client_operation_time_to_first_chunk_seconds_bucket",
    ),
    latency=buckets(f"{_OTEL_DURATION}_bucket"),
    input_tokens=count(_OTEL_TOKENS, Matcher("gen_ai_token_type", "=", "input")),
    output_tokens=count(_OTEL_TOKENS, Matcher("gen_ai_token_type", "=", "output")),
    input_tokens_per_request=buckets(
        _OTEL_TOKEN_BUCKETS, where=(Matcher("gen_ai_token_type", "=", "input"),)
    ),
    output_tokens_per_request=buckets(
        _OTEL_TOKEN_BUCKETS, where=(Matcher("gen_ai_token_type", "=", "output"),)
    ),
    **_EVAL,
)


def _both(prefix: str, name: str) -> Metric:
    # `prefix:name` as the server exports it, `prefix_name` as Prometheus stores it when the scrape
    # negotiates OpenMetrics with underscore escaping (prometheus/client_python #1177, #1180).
    return names(f"{prefix}:{name}", f"{prefix}_{name}")


# The HTTP server's failures, where a series of it carries the variant's selector (a scrape label;
# vLLM's own model_name is not on these). Status is "5xx" with the default instrumentator grouping.
_HTTP_5XX = Source(names("http_requests_total"), (Matcher("status", "=~", "5.."),))

# vLLM counts finished requests by finished_reason ("stop", "length", "abort", "error"), creating every
# reason's series at start; aborts (client gone) and errors are not successes. It has no failure
# counter of its own in v0.10; `request_failure_total` is read where a build exports one.
_VLLM_ERRORS = Term((Source(_both("vllm", "request_failure_total")), _HTTP_5XX), zero_when="metric")
VLLM = Preset(
    name="vllm",
    requests=Count(
        (
            count(
                _both("vllm", "request_success_total"),
                Matcher("finished_reason", "!~", "abort|error"),
                zero_when="metric",
            ),
            # Failed requests count as requests where their series exist; where they do not, the
            # error count is reported missing and requests are the successes.
            Term(_VLLM_ERRORS.sources, "metric", optional=True),
        )
    ),
    errors=_VLLM_ERRORS,
    ttft=buckets(_both("vllm", "time_to_first_token_seconds_bucket")),
    latency=buckets(_both("vllm", "e2e_request_latency_seconds_bucket")),
    input_tokens=count(_both("vllm", "prompt_tokens_total")),
    output_tokens=count(_both("vllm", "generation_tokens_total")),
    input_tokens_per_request=buckets(_both("vllm", "request_prompt_tokens_bucket")),
    output_tokens_per_request=buckets(_both("vllm", "request_generation_tokens_bucket")),
    **_EVAL,
)

# SGLang mirrors vLLM's names under `sglang:`; num_requests_total counts requests it processed.
SGLANG = Preset(
    name="sglang",
    requests=count(_both("sglang", "num_requests_total")),
    errors=Term((_HTTP_5XX,), zero_when="metric"),
    ttft=buckets(_both("sglang", "time_to_first_token_seconds_bucket")),
    latency=buckets(_both("sglang", "e2e_request_latency_seconds_bucket")),
    input_tokens=count(_both("sglang", "prompt_tokens_total")),
    output_tokens=count(_both("sglang", "generation_tokens_total")),
    # Exported when the server runs with --collect-tokens-histogram.
    input_tokens_per_request=buckets(_both("sglang", "prompt_tokens_histogram_bucket")),
    output_tokens_per_request=buckets(_both("sglang", "generation_tokens_histogram_bucket")),
    **_EVAL,
)

# LiteLLM's failed-requests counter also counts the client's mistakes (400 unknown model, 401, 429
# rate limits), and appears only with the first failure. Since v1.60 or so its total-requests counter
# carries every response's status_code, so errors are that counter's server errors and timeouts (408),
# and "none yet" is a zero wherever the variant has request series with a status_code. Older proxies
# have no status_code there: then the failed-requests counter's exception_status is read.
_LITELLM_REQUESTS = "litellm_proxy_total_requests_metric_total"
LITELLM_ERROR_STATUS = "5..|408"
LITELLM = Preset(
    name="litellm",
    # requested_model is the one model label on every LiteLLM metric (the alias clients ask for).
    variant_label="requested_model",
    requests=count(_LITELLM_REQUESTS),
    errors=Term(
        (
            Source(
                names(_LITELLM_REQUESTS),
                (Matcher("status_code", "=~", LITELLM_ERROR_STATUS),),
                requires="status_code",
            ),
            Source(
                names("litellm_proxy_failed_requests_metric_total"),
                (Matcher("exception_status", "=~", LITELLM_ERROR_STATUS),),
            ),
        ),
        zero_when="metric",
    ),
    # LiteLLM records TTFT for streaming requests only.
    ttft=buckets("litellm_llm_api_time_to_first_token_metric_bucket"),
    latency=buckets("litellm_request_total_latency_metric_bucket"),
    input_tokens=count("litellm_input_tokens_metric_total"),
    output_tokens=count("litellm_output_tokens_metric_total"),
    **_EVAL,
)

# Only the spec's custom SLO queries; every built-in field reads as missing.
CUSTOM = Preset(name="custom")

PRESETS: dict[str, Preset] = {p.name: p for p in (OPEN_TELEMETRY_GEN_AI, VLLM, SGLANG, LITELLM, CUSTOM)}
