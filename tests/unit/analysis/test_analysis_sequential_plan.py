"""The plan's horizon: the least horizon whose rule keeps its errors within the rollout's rates."""

from __future__ import annotations

import math

import pytest

from llmrollout.analysis.sequential.plan import Forecast, SLOPlan, horizon_needed


def _plans(*forecasts: Forecast) -> list[SLOPlan]:
    return [SLOPlan("errorRate", 100.0, 1.0, None, False, forecasts=forecasts)]


# Per minute, a healthy candidate's LLR drifts by -1 (variance 2), a regressed one's by +1: after m minutes
# each errs with chance Phi(-sqrt(m / 2)).
EVEN = Forecast(healthy=(-1.0, 2.0), regressed=(1.0, 2.0))


@pytest.mark.parametrize(
    ("plans", "alpha", "beta", "least"),
    [
        (_plans(EVEN), 0.01, 0.05, 2 * 2.3263**2),  # false rollbacks bind: Phi(-sqrt(m/2)) <= 1%
        (_plans(EVEN), 0.05, 0.01, 2 * 2.3263**2),  # misses bind
        (_plans(EVEN, EVEN), 0.01, 0.05, 2 * 2.5758**2),  # two tests share the false rollbacks
        (_plans(EVEN), 0.2, 0.2, 2 * 0.8416**2),
    ],
)
def test_the_horizon_needed_is_the_least_that_keeps_both_error_rates(
    plans: list[SLOPlan], alpha: float, beta: float, least: float
) -> None:
    needed = horizon_needed(plans, alpha, beta)
    assert needed is not None
    # The search steps by 2%: the answer is the first step at or past the least horizon.
    assert least <= needed <= least * 1.02 + 1e-9


def test_a_test_that_never_leans_to_h0_for_a_healthy_candidate_needs_more_than_a_week() -> None:
    assert horizon_needed(_plans(Forecast(healthy=(0.1, 2.0), regressed=(1.0, 2.0))), 0.01, 0.05) == math.inf


def test_no_forecast_no_horizon() -> None:
    assert horizon_needed([SLOPlan("errorRate", None, None, None, False)], 0.01, 0.05) is None


@pytest.mark.parametrize(
    ("false_rollback", "miss", "errs"),
    [
        (None, None, False),  # no forecast: nothing to say
        (0.0009, 0.05, False),  # within a tenth of falseRollbackRate and within missRate
        (0.0011, 0.0, True),  # more than a tenth of falseRollbackRate
        (0.0, 0.051, True),  # more than missRate
        (0.2, 0.3, True),
    ],
)
def test_an_slo_errs_at_the_horizon_beyond_a_tenth_of_alpha_or_beyond_beta(
    false_rollback: float | None, miss: float | None, errs: bool
) -> None:
    slo = SLOPlan(
        "errorRate", None, None, None, False, horizon_false_rollback=false_rollback, horizon_miss=miss
    )
    assert slo.errs_at_horizon(0.01, 0.05) is errs


def test_an_slo_plan_leaves_out_what_is_not_known() -> None:
    assert SLOPlan("ttft.p95", None, None, None, True).to_status() == {"decided": True}
    known = SLOPlan("errorRate", 950.0, 31.94, "error rate 0.02", False, 0.012345, math.inf)
    assert known.to_status() == {
        "expectedRequests": 950.0,
        "expectedMinutes": 31.9,
        "smallestCatchable": "error rate 0.02",
        "decided": False,
        "horizonFalseRollback": 0.0123,
    }
