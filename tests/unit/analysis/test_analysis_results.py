import json
import math

import pytest

from llmrollout.analysis.results import SLOResult, results_from_status, results_to_status
from llmrollout.analysis.verdict import Verdict

FAILED_TTFT = SLOResult(
    slo="ttft.p95",
    variant="v2",
    value=1.42,
    bound=0.8,
    samples=412,
    verdict=Verdict.FAIL,
    message="ttft p95 1.42s > 0.80s on v2 (n=412)",
)


def test_status_is_camel_case_json() -> None:
    status = FAILED_TTFT.to_status()
    assert status == {
        "slo": FAILED_TTFT.slo,
        "variant": FAILED_TTFT.variant,
        "value": FAILED_TTFT.value,
        "bound": FAILED_TTFT.bound,
        "samples": FAILED_TTFT.samples,
        "verdict": "Fail",
        "message": FAILED_TTFT.message,
    }
    json.dumps(status, allow_nan=False)


@pytest.mark.parametrize("value", [None, 0.0, 0.123, 1e-9])
@pytest.mark.parametrize("verdict", list(Verdict))
def test_round_trips_through_status(value: float | None, verdict: Verdict) -> None:
    result = SLOResult("errorRate", "v2", value, 0.02, 400, verdict, "msg")
    encoded = json.loads(json.dumps(result.to_status(), allow_nan=False))
    assert SLOResult.from_status(encoded) == result


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_become_null(number: float) -> None:
    result = SLOResult("latency.p95", "v2", number, number, 3, Verdict.INCONCLUSIVE, "NaN")
    status = result.to_status()
    assert status["value"] is None
    assert status["bound"] is None
    json.dumps(status, allow_nan=False)


def test_lists_round_trip() -> None:
    results = [FAILED_TTFT, SLOResult("errorRate", "v2", 0.01, 0.02, 400, Verdict.PASS, "ok")]
    assert results_from_status(results_to_status(results)) == results


@pytest.mark.parametrize(
    ("message", "headline"),
    [
        # The sequential method: the closing details go, nested parentheses and all.
        (
            "errorRate 0.000 this window, within 0.050 on v2: cleared (error rate 0.000 (n=122; H1 0.050"
            " vs H0 0.025): LLR -3.17, rolls back at 7.04, clears at -2.99)",
            "errorRate 0.000 this window, within 0.050 on v2: cleared",
        ),
        # A parenthesis before the details stays.
        (
            "quality drop vs v1 0.004 this window on v2: undecided at the horizon (1h), the evidence"
            " leaned to within 0.030 (failed share 0.101 vs v1 0.100 (n=3000 vs 3800))",
            "quality drop vs v1 0.004 this window on v2: undecided at the horizon (1h), the evidence"
            " leaned to within 0.030",
        ),
        ("errorRate 0.010 <= 0.050 on v2 (n=400)", "errorRate 0.010 <= 0.050 on v2"),  # threshold
        ("ttft p95 0.31s this window on v2: warm-up, not counted as evidence", None),  # no details
        ("cut short by the message limit (n=12; H1 0.05 …", None),  # unbalanced: left whole
        ("(only details)", None),
    ],
)
def test_a_headline_leaves_out_the_closing_details(message: str, headline: str | None) -> None:
    result = SLOResult("errorRate", "v2", 0.0, 0.05, 1, Verdict.PASS, message)
    assert result.headline == (message if headline is None else headline)
