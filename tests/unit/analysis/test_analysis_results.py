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
