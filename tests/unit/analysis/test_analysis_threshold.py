import json
import math
from dataclasses import replace
from typing import Any

import pytest

from llmrollout.analysis.observations import Histogram, VariantWindow
from llmrollout.analysis.results import SLOResult
from llmrollout.analysis.threshold import evaluate_threshold, evaluate_variant
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import Pricing, SLOs

INF = math.inf
PASS, INCONCLUSIVE, FAIL = Verdict.PASS, Verdict.INCONCLUSIVE, Verdict.FAIL


def slos(**fields: Any) -> SLOs:
    """SLOs written as users write them (camelCase), validated by the real model."""
    return SLOs.model_validate(fields)


def fast_histogram(total: float) -> Histogram:
    # Everything at or below 0.5s: p95 interpolates inside (0.25, 0.5].
    return Histogram(((0.25, 0.5 * total), (0.5, total), (1.0, total), (INF, total)))


def slow_histogram(total: float) -> Histogram:
    # Half the observations in (1, 2]: p95 interpolates inside it, well above 1s.
    return Histogram(((0.5, 0.0), (1.0, 0.5 * total), (2.0, total), (INF, total)))


def overflow_histogram(total: float) -> Histogram:
    # 10% above the highest finite edge: p95 is only known to exceed 2s.
    return Histogram(((1.0, 0.5 * total), (2.0, 0.9 * total), (INF, total)))


def p95(hist: Histogram) -> float:
    """Independent of the implementation under test: linear interpolation by hand, on the
    bucket that holds rank 0.95 * total, for the shapes above."""
    edges = [upper for upper, _ in hist.buckets]
    counts = [cumulative for _, cumulative in hist.buckets]
    rank = 0.95 * counts[-1]
    for i, cumulative in enumerate(counts):
        if cumulative >= rank:
            lower, below = (edges[i - 1], counts[i - 1]) if i else (0.0, 0.0)
            return lower + (edges[i] - lower) * (rank - below) / (cumulative - below)
    raise AssertionError("rank beyond the histogram")


HEALTHY = VariantWindow(
    variant="v2",
    requests=400.0,
    errors=4.0,
    ttft=fast_histogram(400.0),
    latency=fast_histogram(400.0),
    eval_score_sum=0.9 * 120,
    eval_score_count=120.0,
    input_tokens=400.0 * 1000,
    output_tokens=400.0 * 200,
    custom={"refusals": 0.01},
)
STABLE = replace(HEALTHY, variant="v1", eval_score_sum=0.92 * 200, eval_score_count=200.0)
PRICING = Pricing(input_per_million_tokens=1.0, output_per_million_tokens=2.0)
# 1000 input tokens at $1/M plus 200 output tokens at $2/M per request
HEALTHY_COST = (1000 * 1.0 + 200 * 2.0) / 1e6

QUALITY = {"quality": {"minScore": 0.8, "maxDropVsStable": 0.03}}
TTFT = {"ttft": {"p95": "800ms"}}
LATENCY = {"latency": {"p95": "1s"}}
ERRORS = {"errorRate": {"max": 0.02}}
COST = {"costPerRequest": {"maxUSD": 0.002}}
FEEDBACK = {"feedback": {"maxDownRateVsStable": 0.5}}
RATED = replace(HEALTHY, feedback_up=36.0, feedback_down=4.0)  # a thumbs-down share of 0.1
RATED_STABLE = replace(STABLE, feedback_up=90.0, feedback_down=10.0)
CUSTOM_MAX = {"custom": [{"name": "refusals", "query": "x{v='{{variant}}'}", "max": 0.05}]}
CUSTOM_MIN = {"custom": [{"name": "refusals", "query": "x{v='{{variant}}'}", "min": 0.005}]}
CUSTOM_BOTH = {"custom": [{"name": "refusals", "query": "x{v='{{variant}}'}", "min": 0.005, "max": 0.05}]}


class Case:
    def __init__(
        self,
        case_id: str,
        spec: dict[str, Any],
        slo: str,
        verdict: Verdict,
        window: VariantWindow = HEALTHY,
        *,
        baseline: VariantWindow | None = STABLE,
        pricing: Pricing | None = PRICING,
        value: float | None = None,
        words: tuple[str, ...] = (),
    ) -> None:
        self.id = case_id
        self.spec = spec
        self.slo = slo
        self.verdict = verdict
        self.window = window
        self.baseline = baseline
        self.pricing = pricing
        self.value = value
        self.words = words


CASES = [
    # quality.minScore
    Case("quality-min-pass", QUALITY, "quality.minScore", PASS, value=0.9, words=("0.900 >= 0.800", "n=120")),
    Case(
        "quality-min-fail",
        QUALITY,
        "quality.minScore",
        FAIL,
        replace(HEALTHY, eval_score_sum=0.7 * 120),
        value=0.7,
        words=("0.700 < 0.800", "on v2"),
    ),
    Case(
        "quality-min-missing",
        QUALITY,
        "quality.minScore",
        INCONCLUSIVE,
        replace(HEALTHY, eval_score_sum=None),
        words=("series missing",),
    ),
    Case(
        "quality-min-nan",
        QUALITY,
        "quality.minScore",
        INCONCLUSIVE,
        replace(HEALTHY, eval_score_sum=math.nan),
        words=("NaN",),
    ),
    Case(
        "quality-min-no-scores",
        QUALITY,
        "quality.minScore",
        INCONCLUSIVE,
        replace(HEALTHY, eval_score_sum=0.0, eval_score_count=0.0),
        words=("no eval scores",),
    ),
    # quality.maxDropVsStable
    Case(
        "quality-drop-pass",
        QUALITY,
        "quality.maxDropVsStable",
        PASS,
        value=0.92 - 0.9,
        words=("0.020 <= 0.030", "vs v1"),
    ),
    Case(
        "quality-drop-fail",
        QUALITY,
        "quality.maxDropVsStable",
        FAIL,
        replace(HEALTHY, eval_score_sum=0.85 * 120),
        value=0.92 - 0.85,
        words=("0.070 > 0.030", "vs v1", "on v2"),
    ),
    Case(
        "quality-drop-no-baseline",
        QUALITY,
        "quality.maxDropVsStable",
        INCONCLUSIVE,
        baseline=None,
        words=("no stable baseline",),
    ),
    Case(
        "quality-drop-baseline-missing",
        QUALITY,
        "quality.maxDropVsStable",
        INCONCLUSIVE,
        baseline=replace(STABLE, eval_score_count=None),
        words=("series missing on v1",),
    ),
    Case(
        "quality-drop-baseline-empty",
        QUALITY,
        "quality.maxDropVsStable",
        INCONCLUSIVE,
        baseline=replace(STABLE, eval_score_sum=0.0, eval_score_count=0.0),
        words=("no eval scores on v1",),
    ),
    Case(
        "quality-drop-candidate-nan",
        QUALITY,
        "quality.maxDropVsStable",
        INCONCLUSIVE,
        replace(HEALTHY, eval_score_count=math.nan),
        words=("NaN",),
    ),
    Case(
        "quality-drop-against-itself",
        QUALITY,
        "quality.maxDropVsStable",
        PASS,
        STABLE,
        baseline=STABLE,
        value=0.0,
    ),
    # ttft.p95
    Case(
        "ttft-pass",
        TTFT,
        "ttft.p95",
        PASS,
        value=p95(fast_histogram(400.0)),
        words=("<= 0.80s", "n=400"),
    ),
    Case(
        "ttft-fail",
        TTFT,
        "ttft.p95",
        FAIL,
        replace(HEALTHY, ttft=slow_histogram(412.0)),
        value=p95(slow_histogram(412.0)),
        words=(f"ttft p95 {p95(slow_histogram(412.0)):.2f}s > 0.80s on v2 (n=412)",),
    ),
    Case(
        "ttft-missing", TTFT, "ttft.p95", INCONCLUSIVE, replace(HEALTHY, ttft=None), words=("series missing",)
    ),
    Case(
        "ttft-no-requests",
        TTFT,
        "ttft.p95",
        INCONCLUSIVE,
        replace(HEALTHY, ttft=fast_histogram(0.0)),
        words=("no requests",),
    ),
    Case(
        "ttft-nan",
        TTFT,
        "ttft.p95",
        INCONCLUSIVE,
        replace(HEALTHY, ttft=Histogram(((0.5, math.nan), (INF, 3.0)))),
        words=("NaN",),
    ),
    Case(
        "ttft-no-inf-bucket",
        TTFT,
        "ttft.p95",
        INCONCLUSIVE,
        replace(HEALTHY, ttft=Histogram(((0.5, 3.0), (1.0, 3.0)))),
        words=("+Inf",),
    ),
    Case(
        "ttft-overflow-above-bound",
        TTFT,
        "ttft.p95",
        FAIL,
        replace(HEALTHY, ttft=overflow_histogram(100.0)),
        value=2.0,
        words=("above 2.00s > 0.80s",),
    ),
    # latency.p95
    Case("latency-pass", LATENCY, "latency.p95", PASS, value=p95(fast_histogram(400.0))),
    Case(
        "latency-fail",
        LATENCY,
        "latency.p95",
        FAIL,
        replace(HEALTHY, latency=slow_histogram(50.0)),
        value=p95(slow_histogram(50.0)),
        words=("> 1.00s", "n=50"),
    ),
    Case(
        "latency-overflow-bound-not-comparable",
        {"latency": {"p95": "5s"}},
        "latency.p95",
        INCONCLUSIVE,
        replace(HEALTHY, latency=overflow_histogram(100.0)),
        words=("above the highest bucket edge 2.00s",),
    ),
    Case(
        "latency-missing",
        LATENCY,
        "latency.p95",
        INCONCLUSIVE,
        replace(HEALTHY, latency=None),
        words=("series missing",),
    ),
    Case(
        "latency-no-requests",
        LATENCY,
        "latency.p95",
        INCONCLUSIVE,
        replace(HEALTHY, latency=Histogram(((1.0, 0.0), (INF, 0.0)))),
        words=("no requests",),
    ),
    # errorRate
    Case("errors-pass", ERRORS, "errorRate", PASS, value=4 / 400, words=("0.010 <= 0.020", "n=400")),
    Case("errors-at-bound-pass", ERRORS, "errorRate", PASS, replace(HEALTHY, errors=8.0), value=0.02),
    Case(
        "errors-fail",
        ERRORS,
        "errorRate",
        FAIL,
        replace(HEALTHY, errors=20.4),
        value=20.4 / 400,
        words=("errorRate 0.051 > 0.020 on v2 (n=400)",),
    ),
    Case(
        "errors-zero-requests",
        ERRORS,
        "errorRate",
        INCONCLUSIVE,
        replace(HEALTHY, requests=0.0, errors=0.0),
        words=("no requests",),
    ),
    Case(
        "errors-missing-errors",
        ERRORS,
        "errorRate",
        INCONCLUSIVE,
        replace(HEALTHY, errors=None),
        words=("series missing",),
    ),
    Case(
        "errors-missing-requests",
        ERRORS,
        "errorRate",
        INCONCLUSIVE,
        replace(HEALTHY, requests=None),
        words=("series missing",),
    ),
    Case("errors-nan", ERRORS, "errorRate", INCONCLUSIVE, replace(HEALTHY, errors=math.nan), words=("NaN",)),
    # costPerRequest
    Case("cost-pass", COST, "costPerRequest", PASS, value=HEALTHY_COST, words=("<= $0.002", "n=400")),
    Case(
        "cost-fail",
        COST,
        "costPerRequest",
        FAIL,
        replace(HEALTHY, output_tokens=400.0 * 900),
        value=(1000 * 1.0 + 900 * 2.0) / 1e6,
        words=("> $0.002", "on v2"),
    ),
    Case(
        "cost-no-pricing",
        COST,
        "costPerRequest",
        INCONCLUSIVE,
        pricing=None,
        words=("no pricing for v2",),
    ),
    Case(
        "cost-missing-tokens",
        COST,
        "costPerRequest",
        INCONCLUSIVE,
        replace(HEALTHY, output_tokens=None),
        words=("series missing",),
    ),
    Case(
        "cost-unpriced-series-not-needed",
        COST,
        "costPerRequest",
        PASS,
        replace(HEALTHY, input_tokens=None),
        pricing=Pricing(output_per_million_tokens=2.0),
        value=200 * 2.0 / 1e6,
    ),
    Case(
        "cost-zero-requests",
        COST,
        "costPerRequest",
        INCONCLUSIVE,
        replace(HEALTHY, requests=0.0),
        words=("no requests",),
    ),
    Case(
        "cost-nan",
        COST,
        "costPerRequest",
        INCONCLUSIVE,
        replace(HEALTHY, input_tokens=math.nan),
        words=("NaN",),
    ),
    # custom.<name>
    Case("custom-max-pass", CUSTOM_MAX, "custom.refusals", PASS, value=0.01, words=("0.01 <= 0.05",)),
    Case(
        "custom-max-fail",
        CUSTOM_MAX,
        "custom.refusals",
        FAIL,
        replace(HEALTHY, custom={"refusals": 0.07}),
        value=0.07,
        words=("custom.refusals 0.07 > 0.05 on v2",),
    ),
    Case("custom-min-pass", CUSTOM_MIN, "custom.refusals", PASS, value=0.01),
    Case(
        "custom-min-fail",
        CUSTOM_MIN,
        "custom.refusals",
        FAIL,
        replace(HEALTHY, custom={"refusals": 0.001}),
        value=0.001,
        words=("< 0.005",),
    ),
    Case(
        "custom-both-below-min",
        CUSTOM_BOTH,
        "custom.refusals",
        FAIL,
        replace(HEALTHY, custom={"refusals": 0.001}),
        value=0.001,
    ),
    Case(
        "custom-both-above-max",
        CUSTOM_BOTH,
        "custom.refusals",
        FAIL,
        replace(HEALTHY, custom={"refusals": 0.5}),
        value=0.5,
    ),
    Case("custom-both-inside", CUSTOM_BOTH, "custom.refusals", PASS, value=0.01),
    Case(
        "custom-missing-key",
        CUSTOM_MAX,
        "custom.refusals",
        INCONCLUSIVE,
        replace(HEALTHY, custom={}),
        words=("series missing",),
    ),
    Case(
        "custom-none",
        CUSTOM_MAX,
        "custom.refusals",
        INCONCLUSIVE,
        replace(HEALTHY, custom={"refusals": None}),
        words=("series missing",),
    ),
    # feedback.maxDownRateVsStable: the candidate's thumbs-down share against 1.5 x stable's
    Case(
        "feedback-pass",
        FEEDBACK,
        "feedback.maxDownRateVsStable",
        PASS,
        RATED,
        baseline=RATED_STABLE,
        value=0.0,
        words=("share 0.100 vs 0.100, <= 1.5x v1's on v2", "n=40 vs 100"),
    ),
    Case(
        "feedback-fail",
        FEEDBACK,
        "feedback.maxDownRateVsStable",
        FAIL,
        replace(RATED, feedback_up=28.0, feedback_down=12.0),
        baseline=RATED_STABLE,
        value=2.0,
        words=("feedback thumbs-down vs v1: share 0.300 vs 0.100, > 1.5x",),
    ),
    Case(
        "feedback-none-down-anywhere",
        FEEDBACK,
        "feedback.maxDownRateVsStable",
        PASS,
        replace(RATED, feedback_down=0.0),
        baseline=replace(RATED_STABLE, feedback_down=0.0),
        value=0.0,
    ),
    Case(
        "feedback-down-only-on-the-candidate",
        FEEDBACK,
        "feedback.maxDownRateVsStable",
        FAIL,
        RATED,
        baseline=replace(RATED_STABLE, feedback_down=0.0),
        value=INF,
    ),
    Case(
        "feedback-missing",
        FEEDBACK,
        "feedback.maxDownRateVsStable",
        INCONCLUSIVE,
        HEALTHY,
        baseline=RATED_STABLE,
        words=("series missing",),
    ),
    Case(
        "feedback-none-yet",
        FEEDBACK,
        "feedback.maxDownRateVsStable",
        INCONCLUSIVE,
        replace(RATED, feedback_up=0.0, feedback_down=0.0),
        baseline=RATED_STABLE,
        words=("no feedback",),
    ),
    Case(
        "feedback-stable-missing",
        FEEDBACK,
        "feedback.maxDownRateVsStable",
        INCONCLUSIVE,
        RATED,
        baseline=STABLE,
        words=("series missing on v1",),
    ),
    Case(
        "feedback-no-baseline",
        FEEDBACK,
        "feedback.maxDownRateVsStable",
        INCONCLUSIVE,
        RATED,
        baseline=None,
        words=("no stable baseline",),
    ),
    Case(
        "feedback-nan",
        FEEDBACK,
        "feedback.maxDownRateVsStable",
        INCONCLUSIVE,
        replace(RATED, feedback_down=math.nan),
        baseline=RATED_STABLE,
        words=("NaN",),
    ),
    Case(
        "custom-nan",
        CUSTOM_MAX,
        "custom.refusals",
        INCONCLUSIVE,
        replace(HEALTHY, custom={"refusals": math.nan}),
        words=("NaN",),
    ),
]


def only(results: list[SLOResult], slo: str) -> SLOResult:
    matching = [result for result in results if result.slo == slo]
    assert len(matching) == 1, results
    return matching[0]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_threshold_table(case: Case) -> None:
    results = evaluate_variant(slos(**case.spec), case.window, case.pricing, baseline=case.baseline)
    result = only(results, case.slo)
    assert result.verdict is case.verdict, result.message
    assert result.variant == case.window.variant
    if case.value is not None:
        assert result.value == pytest.approx(case.value)
    for words in case.words:
        assert words in result.message
    if case.verdict is INCONCLUSIVE:
        assert "inconclusive" in result.message


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_status_of_every_case_is_json_safe(case: Case) -> None:

    for result in evaluate_variant(slos(**case.spec), case.window, case.pricing, baseline=case.baseline):
        json.dumps(result.to_status(), allow_nan=False)


def test_one_result_per_configured_slo_in_a_fixed_order() -> None:
    every_slo = slos(**QUALITY, **TTFT, **LATENCY, **ERRORS, **COST, **CUSTOM_MAX)
    results = evaluate_variant(every_slo, HEALTHY, PRICING, baseline=STABLE)
    assert [result.slo for result in results] == [
        "quality.minScore",
        "quality.maxDropVsStable",
        "ttft.p95",
        "latency.p95",
        "errorRate",
        "costPerRequest",
        "custom.refusals",
    ]
    assert all(result.verdict is PASS for result in results), [r.message for r in results]


def test_no_slos_no_results() -> None:
    assert evaluate_variant(slos(), HEALTHY, PRICING) == []


def test_an_empty_window_is_never_a_pass() -> None:
    every_slo = slos(**QUALITY, **TTFT, **LATENCY, **ERRORS, **COST, **CUSTOM_MAX)
    results = evaluate_variant(every_slo, VariantWindow(variant="v2"), PRICING, baseline=STABLE)
    assert len(results) == 7
    assert all(result.verdict is INCONCLUSIVE for result in results)


def test_only_the_configured_quality_bound_is_checked() -> None:
    results = evaluate_variant(slos(quality={"minScore": 0.5}), HEALTHY, None)
    assert [result.slo for result in results] == ["quality.minScore"]


def test_evaluate_threshold_uses_stable_as_baseline() -> None:
    results = evaluate_threshold(slos(**QUALITY), HEALTHY, STABLE, PRICING)
    assert results == evaluate_variant(slos(**QUALITY), HEALTHY, PRICING, baseline=STABLE)


def test_buckets_far_from_the_bound_are_inconclusive_with_advice_never_a_breach() -> None:
    coarse = Histogram(((0.0, 0.0), (5.0, 100.0), (10.0, 100.0), (INF, 100.0)))
    [result] = evaluate_variant(slos(ttft={"p95": "800ms"}), VariantWindow("v2", ttft=coarse), None)
    assert result.verdict == INCONCLUSIVE
    assert "no bucket edge between 0.40s and 1.60s" in result.message and "add buckets" in result.message


@pytest.mark.parametrize(
    ("configured", "window", "named"),
    [
        (
            {"errorRate": {"max": 0.02}},
            VariantWindow("v2", requests=100, missing={"errors": 'http_requests_total{model_name="v2"}'}),
            'errorRate inconclusive on v2: series missing: http_requests_total{model_name="v2"}',
        ),
        (
            {"ttft": {"p95": "800ms"}},
            VariantWindow("v2", missing={"ttft": 'ttft_bucket{variant="v2"}'}),
            'ttft p95 inconclusive on v2: series missing: ttft_bucket{variant="v2"}',
        ),
        # Missing, but not named by the provider: the words stay as they were.
        (
            {"errorRate": {"max": 0.02}},
            VariantWindow("v2", requests=100),
            "errorRate inconclusive on v2: series missing",
        ),
    ],
)
def test_a_missing_series_is_named_in_the_result(
    configured: dict[str, Any], window: VariantWindow, named: str
) -> None:
    (result,) = evaluate_variant(slos(**configured), window, None)
    assert result.verdict == INCONCLUSIVE and result.message == named
