"""Which simulated regressions breach a bound the SLOs state (must_catch), and the design points."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.decisions.model import (
    COST_MAX_USD,
    DESIGN_POINTS,
    SCENARIOS,
    SLO_SPEC,
    STABLE,
    breached_bounds,
    cost_per_request,
    scenario,
)


@pytest.mark.parametrize(
    ("name", "must_catch"),
    [
        ("healthy: identical", False),
        ("healthy: within tolerance", False),
        ("healthy: outage on both", False),
        ("errors 1% -> 1.5%", False),  # within both errorRate bounds
        ("errors 1% -> 2%", True),  # at both: max 0.02 and twice stable's
        ("errors 1% -> 4%", True),
        ("pass rate 90% -> 87%", True),  # a drop of exactly maxDropVsStable
        ("pass rate 90% -> 84%", True),
        ("TTFT p95 +20% (shift)", True),  # exactly maxIncreaseVsStable
        ("TTFT p95 +30% (tail)", True),
        ("output tokens +20%", True),  # cost +14%: beyond costPerRequest.maxIncreaseVsStable 0.1
    ],
)
def test_must_catch(name: str, must_catch: bool) -> None:
    assert scenario(name).must_catch is must_catch


def test_a_regression_just_inside_every_bound_is_not_a_must_catch() -> None:
    assert breached_bounds(replace(STABLE, error_rate=0.0199)) == []
    assert breached_bounds(replace(STABLE, pass_rate=0.8701)) == []
    assert breached_bounds(replace(STABLE, ttft_scale=1.199)) == []
    assert breached_bounds(STABLE) == []


def test_design_points_sit_exactly_on_a_bound_and_twice_it_is_run_too() -> None:
    errors = scenario(DESIGN_POINTS["errors"]).candidate
    assert errors.error_rate == SLO_SPEC.error_rate.max  # type: ignore[union-attr]
    assert breached_bounds(errors) == ["errorRate.max", "errorRate.maxIncreaseVsStable"]
    assert scenario(DESIGN_POINTS["quality"]).candidate.pass_rate == pytest.approx(0.87)
    ttft = scenario(DESIGN_POINTS["ttft"]).candidate
    assert ttft.ttft_p95() == pytest.approx(1.2 * STABLE.ttft_p95(), rel=1e-6)
    assert breached_bounds(ttft) == ["ttft.maxIncreaseVsStable"]
    cost = scenario(DESIGN_POINTS["tokens"]).candidate
    assert cost_per_request(cost) == pytest.approx(1.1 * cost_per_request(STABLE))
    assert breached_bounds(cost) == ["costPerRequest.maxIncreaseVsStable"]
    at_max = next(s for s in SCENARIOS if s.name.startswith("cost at maxUSD")).candidate
    assert cost_per_request(at_max) == pytest.approx(COST_MAX_USD)
    assert "costPerRequest.maxUSD" in breached_bounds(at_max)
    doubled = next(s for s in SCENARIOS if s.name.startswith("cost +20%")).candidate
    assert cost_per_request(doubled) == pytest.approx(1.2 * cost_per_request(STABLE))
    names = {s.name for s in SCENARIOS}
    assert {"errors 1% -> 4%", "pass rate 90% -> 84%", "TTFT p95 +40% (shift)"} <= names
    twice = [s for s in SCENARIOS if s.name.startswith("cost at 2x")]
    assert len(twice) == 1 and cost_per_request(twice[0].candidate) == pytest.approx(2 * COST_MAX_USD)
