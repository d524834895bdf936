from typing import Any

import pytest

from llmrollout.analysis.slos import FAMILIES, hard_slos, helpful_fields, needed_fields, rollback_test_count
from llmrollout.api.spec import SLOs


def slos(**fields: Any) -> SLOs:
    return SLOs.model_validate(fields)


CUSTOM = {"name": "refusals", "query": "x{v='{{variant}}'}", "max": 0.1}


def test_every_slo_field_has_exactly_one_family() -> None:
    fields = [family.field for family in FAMILIES]
    assert sorted(fields) == sorted(SLOs.model_fields)


@pytest.mark.parametrize(
    ("spec", "tests"),
    [
        ({}, 0),
        # Each relative bound (on by default for errorRate, ttft and latency) is a test of its own;
        # a percentile's has two (the share above stable's p95 x (1 + maxIncrease), the shift watch).
        ({"errorRate": {"max": 0.02}}, 2),
        ({"errorRate": {"max": 0.02, "maxIncreaseVsStable": None}}, 1),
        ({"ttft": {"p95": "800ms"}, "latency": {"p95": "5s"}}, 6),
        ({"ttft": {"p95": "800ms", "maxIncreaseVsStable": None}}, 1),
        ({"quality": {"minScore": 0.8}}, 1),
        ({"quality": {"maxDropVsStable": 0.03}}, 2),
        ({"quality": {"minScore": 0.8, "maxDropVsStable": 0.03}}, 3),
        ({"costPerRequest": {"maxUSD": 0.002}}, 1),
        ({"feedback": {"maxDownRateVsStable": 0.2}}, 1),
        ({"custom": [CUSTOM]}, 0),
    ],
)
def test_rollback_test_count(spec: dict[str, Any], tests: int) -> None:
    assert rollback_test_count(slos(**spec)) == tests


def test_hard_slos_by_default_are_errors_and_latencies() -> None:
    every = slos(
        errorRate={"max": 0.02},
        ttft={"p95": "800ms"},
        latency={"p95": "5s"},
        quality={"minScore": 0.8},
        costPerRequest={"maxUSD": 0.002},
        feedback={"maxDownRateVsStable": 0.2},
        custom=[CUSTOM],
    )
    hard = hard_slos(every)
    assert hard.error_rate == every.error_rate
    assert hard.ttft == every.ttft
    assert hard.latency == every.latency
    assert hard.quality is None
    assert hard.cost_per_request is None
    assert hard.feedback is None
    assert hard.custom == []


def test_severity_overrides_the_default() -> None:
    spec = slos(
        errorRate={"max": 0.02, "severity": "soft"},
        quality={"minScore": 0.8, "severity": "hard"},
        feedback={"maxDownRateVsStable": 0.2, "severity": "hard"},
        custom=[CUSTOM, {**CUSTOM, "name": "hard-one", "severity": "hard"}],
    )
    hard = hard_slos(spec)
    assert hard.error_rate is None
    assert hard.quality == spec.quality
    assert hard.feedback == spec.feedback
    assert [c.name for c in hard.custom] == ["hard-one"]


@pytest.mark.parametrize(
    ("spec", "helpful"),
    [
        ({"quality": {"minScore": 0.8}}, ("eval_score",)),
        # The drop's route through the mean scores reads their histogram too.
        ({"quality": {"maxDropVsStable": 0.03}}, ("eval_score",)),
        ({"costPerRequest": {"maxUSD": 0.002}}, ("input_tokens_per_request", "output_tokens_per_request")),
        # maxIncreaseVsStable needs the token histograms already: nothing more to read.
        ({"costPerRequest": {"maxUSD": 0.002, "maxIncreaseVsStable": 0.1}}, ()),
        ({"errorRate": {"max": 0.02}, "ttft": {"p95": "800ms"}}, ()),
    ],
)
def test_helpful_fields_are_read_but_never_needed(spec: dict[str, Any], helpful: tuple[str, ...]) -> None:
    configured = slos(**spec)
    assert helpful_fields(configured) == helpful
    assert not set(helpful) & set(needed_fields(configured))
