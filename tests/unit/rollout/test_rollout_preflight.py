"""The series report behind MetricsReady and `llmrollout check`: per SLO, found and missing, what to fix."""

from __future__ import annotations

from typing import Any

import pytest

from llmrollout.rollout import Preflight, metrics_report
from tests.unit.rollout.windows import spec

ERRORS_V1 = 'http_requests_total{model_name="v1",status=~"5.."}'
ERRORS_V2 = 'http_requests_total{model_name="v2",status=~"5.."}'
SLOS = {"errorRate": {"max": 0.02}, "ttft": {"p95": "800ms"}}
SELECTORS = {"v1": '{model_name="v1"}', "v2": '{model_name="v2"}'}
FOUND_V1 = {"requests": "vllm_request_success_total", "ttft": "vllm_time_to_first_token_seconds_bucket"}


def vllm(**changes: Any) -> Any:
    return spec(slos=SLOS, metrics__preset="vllm", metrics__variantLabel="model_name", **changes)


def test_every_series_found_is_listed_with_its_selector() -> None:
    found = {**FOUND_V1, "errors": "http_requests_total"}
    preflight = Preflight(missing={}, found={"v1": found, "v2": found}, selectors=SELECTORS)
    report = metrics_report(vllm(), preflight, "v1", "v2")
    assert report.blocking is None and report.complete
    assert report.lines() == [
        "ttft:",
        "  v1 (serving): found",
        '    found   ttft: vllm_time_to_first_token_seconds_bucket{model_name="v1"}',
        "  v2 (candidate): found",
        '    found   ttft: vllm_time_to_first_token_seconds_bucket{model_name="v2"}',
        "errorRate:",
        "  v1 (serving): found",
        '    found   requests: vllm_request_success_total{model_name="v1"}',
        '    found   errors: http_requests_total{model_name="v1"}',
        "  v2 (candidate): found",
        '    found   requests: vllm_request_success_total{model_name="v2"}',
        '    found   errors: http_requests_total{model_name="v2"}',
        "MetricsReady: True: every SLO's series found on v1",
    ]


def test_a_serving_versions_missing_error_series_blocks_and_says_what_to_fix() -> None:
    preflight = Preflight(
        missing={"v1": {"errors": ERRORS_V1}, "v2": {"errors": ERRORS_V2}},
        found={"v1": FOUND_V1, "v2": FOUND_V1},
        selectors=SELECTORS,
    )
    report = metrics_report(vllm(), preflight, "v1", "v2")
    assert report.blocking == f"series missing on v1, which serves now: {ERRORS_V1}"
    assert not report.complete
    lines = report.lines()
    at = lines.index("errorRate:")
    assert lines[at : at + 4] == [
        "errorRate:",
        "  v1 (serving): missing",
        f"    missing errors: {ERRORS_V1}",
        '    found   requests: vllm_request_success_total{model_name="v1"}',
    ]
    fix = (
        "its other series are found, so the exporter does not put model_name on errors (or does not export"
        " them): attach model_name at scrape time, so that every series of the target carries it, or remove"
        " the SLOs that read them"
    )
    assert f"  - v1: {fix}; README: Metrics, 'Getting the variant onto the series'." in lines
    assert any(line.startswith(f"  - v2: {fix} (a candidate's series may appear") for line in lines)
    summary = report.summary()
    assert summary.startswith(
        f"rollout of v2 not started: series missing on v1, which serves now: {ERRORS_V1}."
    )
    assert f"To fix: {fix}" in summary and "v2" not in summary.split("To fix:")[1]
    assert lines[-1] == f"MetricsReady: False: {summary}"


def test_a_candidates_missing_series_are_reported_not_required() -> None:
    preflight = Preflight(
        missing={"v2": {"errors": ERRORS_V2, "ttft": "x", "requests": "y"}},
        found={"v1": {**FOUND_V1, "errors": "http_requests_total"}},
    )
    report = metrics_report(vllm(), preflight, "v1", "v2")
    assert report.blocking is None and not report.complete
    assert (
        report.summary()
        == f"every SLO's series found on v1; v2's appear with its traffic ({ERRORS_V2}, x, y)"
    )
    # Nothing of v2's is found: its label is missing altogether (or it has had no traffic yet).
    (fix,) = report.fixes
    assert fix[0] == "v2" and fix[1].startswith('no series carries model_name="v2"')


@pytest.mark.parametrize(
    ("changes", "missing", "advice"),
    [
        (
            {"metrics__variantFrom": "resource", "metrics__preset": "openTelemetryGenAI"},
            {"requests": "a", "errors": "b", "ttft": "c"},
            'no target_info with model_name="v1": set the OpenTelemetry resource attribute'
            " (OTEL_RESOURCE_ATTRIBUTES=model_name=v1)",
        ),
        (
            {"metrics__preset": "openTelemetryGenAI"},
            {"ttft": "gen_ai_server_time_to_first_token_seconds_bucket{...}"},
            "OpenTelemetry's openai-v2 instrumentation records no time to first token",
        ),
        (
            {"metrics__preset": "litellm", "metrics__variantLabel": None},
            {"ttft": "litellm_llm_api_time_to_first_token_metric_bucket{...}"},
            "LiteLLM records time to first token for streamed requests only",
        ),
        (
            {"slos": {"quality": {"minScore": 0.8}}},
            {"eval_score_sum": "llm_eval_score_sum{...}"},
            "quality read llmrollout's own series (llm_eval_score,",
        ),
        (
            {"slos": {"feedback": {"maxDownRateVsStable": 0.2}}},
            {"feedback_down": 'llm_feedback_total{value="down"}'},
            "feedback read llmrollout's own series",
        ),
    ],
    ids=["otel-resource", "otel-ttft", "litellm-ttft", "quality-judge", "feedback-judge"],
)
def test_the_advice_fits_the_cause(changes: dict[str, Any], missing: dict[str, str], advice: str) -> None:
    s = spec(**{"slos": SLOS, "metrics__variantLabel": "model_name", **changes})
    found = {f: "n" for f in ("requests", "errors", "ttft") if f not in missing}
    report = metrics_report(s, Preflight(missing={"v1": missing}, found={"v1": found}), "v1", None)
    assert report.blocking is not None and report.candidate is None
    assert any(fix.startswith(advice) for _, fix in report.fixes), report.fixes
    assert report.summary().startswith("series missing on v1, which serves now:")


@pytest.mark.parametrize(
    ("preflight", "blocking"),
    [
        (Preflight({}, unavailable="connection refused"), "cannot check the series: connection refused"),
        (Preflight({}, problems=("v1 errors: bad_data",)), "cannot check the series: v1 errors: bad_data"),
    ],
)
def test_a_check_that_could_not_ask_blocks(preflight: Preflight, blocking: str) -> None:
    report = metrics_report(vllm(), preflight, "v1", "v2")
    assert report.blocking == blocking and not report.complete
    assert report.lines()[0].startswith(("cannot check the series", "query failed"))


def test_slos_reading_no_series_say_so() -> None:
    s = spec(slos={"custom": [{"name": "refusals", "query": 'sum(x{v="{{variant}}"})', "max": 0.1}]})
    report = metrics_report(s, Preflight({}), "v1", "v2")
    assert report.complete and report.slos == ()
    assert report.lines()[0] == "no SLO reads a built-in series (custom queries are read with each window)"
