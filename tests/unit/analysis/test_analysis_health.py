"""Health of a serving version on its hard SLOs: breaches must be beyond doubt to count."""

from __future__ import annotations

import math

import pytest

from llmrollout.analysis import Histogram, VariantWindow, Verdict
from llmrollout.analysis.health import evaluate_health
from llmrollout.api import SLOs

SLO_SET = SLOs.model_validate(
    {"errorRate": {"max": 0.02}, "ttft": {"p95": "800ms"}, "quality": {"minScore": 0.8}}
)


def window(requests: float, errors: float, slow: float = 0.0, score: float = 0.9) -> VariantWindow:
    fast = requests - slow
    return VariantWindow(
        variant="v1",
        requests=requests,
        errors=errors,
        ttft=Histogram(((0.5, fast), (0.8, fast), (2.0, requests), (math.inf, requests))),
        eval_score_sum=score * 10,
        eval_score_count=10,
    )


@pytest.mark.parametrize(
    ("data", "verdict", "words"),
    [
        (window(400, 2), Verdict.PASS, "errorRate 0.005 <= 0.020"),
        (window(400, 200), Verdict.FAIL, "lower bound"),
        (window(100, 3), Verdict.INCONCLUSIVE, "not yet beyond doubt"),
        (window(400, 0, slow=200), Verdict.FAIL, "ttft p95"),
        (window(400, 0, slow=24), Verdict.INCONCLUSIVE, "ttft p95"),
        (window(400, 2, score=0.1), Verdict.PASS, "errorRate"),  # quality is soft by default
        (VariantWindow(variant="v1"), Verdict.INCONCLUSIVE, "series missing"),
    ],
)
def test_verdicts(data: VariantWindow, verdict: Verdict, words: str) -> None:
    health = evaluate_health(SLO_SET, data, None)
    assert health.verdict == verdict, health.message
    assert words in health.message


def test_a_soft_slo_made_hard_counts() -> None:
    slos = SLOs.model_validate({"quality": {"minScore": 0.8, "severity": "hard"}})
    assert evaluate_health(slos, window(400, 0, score=0.5), None).verdict == Verdict.FAIL


def test_no_hard_slos_is_healthy() -> None:
    slos = SLOs.model_validate({"quality": {"minScore": 0.8}})
    assert evaluate_health(slos, window(400, 300, score=0.1), None).verdict == Verdict.PASS


def test_badness_ranks_versions_by_how_far_past_their_slos() -> None:
    half = evaluate_health(SLO_SET, window(400, 200), None)
    most = evaluate_health(SLO_SET, window(400, 360), None)
    unknown = evaluate_health(SLO_SET, VariantWindow(variant="v1"), None)
    assert half.badness == pytest.approx(25.0) and most.badness == pytest.approx(45.0)
    assert half.badness < most.badness < unknown.badness == math.inf
