"""The report's targets, each met or missed and by how much, and why where missed."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from bench.decisions.model import HORIZON_MINUTES, MISS_RATE, PASS_RATE, QUALITY_MAX_DROP, STEPS, scenario
from bench.decisions.report import (
    MAX_FALSE_ROLLBACK,
    ORACLE,
    OURS,
    judged_by_the_horizon,
    quality_cut_false_rollbacks,
    targets,
    why_missed,
)


def _row(name: str, policy: str = OURS, **values: Any) -> dict[str, Any]:
    item = scenario(name)
    row: dict[str, Any] = {
        "policy": policy,
        "scenario": name,
        "family": item.family,
        "regression": item.regression,
        "must_catch": item.must_catch,
        "breached_bounds": [],
        "rps": 10.0,
        "scrape_seconds": 15.0,
        "promoted_rate": 1.0,
        "false_rollback_rate": None if item.regression else 0.0,
        "false_rollback_upper95": None if item.regression else 0.001,
        "false_rollback_by_tests_rate": 0.0,
        "false_rollback_by_tests_upper95": 0.001,
        "horizon_promoted_rate": 0.0,
        "horizon_rolled_back_rate": 0.0,
        "miss_rate": 0.0 if item.regression else None,
        "undecided_rate": 0.0,
        "mean_requests": 1000.0,
        "mean_minutes": 10.0,
        "p90_minutes": 12.0,
        "mean_minutes_promoted": 10.0,
        "p90_minutes_promoted": 12.0,
        "wald_ratio": None,
    }
    row.update(values)
    return row


def test_targets_say_met_or_missed_and_by_how_much() -> None:
    rows = [
        _row("healthy: identical", promoted_rate=0.96, false_rollback_rate=0.02, false_rollback_upper95=0.03),
        _row("healthy: identical", ORACLE, mean_requests=400.0),
        _row("errors 1% -> 2%", miss_rate=0.08, promoted_rate=0.08),
        _row("errors 1% -> 2%", ORACLE, mean_requests=600.0),
    ]
    text = "\n".join(targets(rows))
    assert "promoted 96.0% < 97% by 1.00 points" in text
    assert "false rollbacks 2.00% > 1% by 1.00 points" in text
    assert "upper 95% bound 3.00% >= 1.5% by 1.50 points" in text
    assert "miss 8.0% > 5% by 3.00 points" in text
    # Ours needs 1000 requests where the oracle needs 400 to promote (2.5x) and 600 to roll back (1.67x).
    assert "| 2.50x | **missed** by 1.25x |" in text
    assert "| 1.67x | met |" in text


def test_targets_met() -> None:
    rows = [
        _row("healthy: identical"),
        _row("healthy: identical", ORACLE, mean_requests=600.0),
        _row("errors 1% -> 1.5%", miss_rate=0.5),  # not a must-catch: no miss target
    ]
    text = "\n".join(targets(rows))
    assert "**missed**" not in text
    assert "0% undecided: **met**" in text


def _drops(rng: np.random.Generator, minutes: int, pass_rate: float, last_step_only: bool) -> np.ndarray:
    """Stable's pass rate minus the candidate's, from binomial draws of their judged answers."""
    candidate, stable = (round(n) for n in judged_by_the_horizon(minutes))
    if last_step_only:
        stable = round(candidate * (100 - STEPS[-1]) / STEPS[-1])
    draws = 400_000
    return (
        rng.binomial(stable, PASS_RATE, draws) / stable
        - rng.binomial(candidate, pass_rate, draws) / candidate
    )


def test_the_best_horizon_cut_on_quality_matches_a_simulation_of_binomial_counts() -> None:
    # Put the cut where the design point is missed exactly MISS_RATE of the time, and count the
    # healthy candidates it rolls back.
    rng = np.random.default_rng(7)
    for minutes, last in itertools.product((HORIZON_MINUTES, 2 * HORIZON_MINUTES), (False, True)):
        cut = np.quantile(_drops(rng, minutes, PASS_RATE - QUALITY_MAX_DROP, last), MISS_RATE)
        for name, rate in quality_cut_false_rollbacks(minutes, last_step_only=last).items():
            drops = _drops(rng, minutes, scenario(name).candidate.pass_rate, last)
            simulated = float(np.mean(drops > cut))
            assert abs(simulated - rate) < 0.004, (minutes, last, name, simulated, rate)
    at_horizon = quality_cut_false_rollbacks(HORIZON_MINUTES)
    assert at_horizon["healthy: within tolerance"] > MAX_FALSE_ROLLBACK > at_horizon["healthy: identical"]
    # Compared within the last step only, even identical candidates cannot meet the target by then.
    within_steps = quality_cut_false_rollbacks(HORIZON_MINUTES, last_step_only=True)
    assert within_steps["healthy: identical"] > MAX_FALSE_ROLLBACK
    assert quality_cut_false_rollbacks(2 * HORIZON_MINUTES)["healthy: within tolerance"] < MAX_FALSE_ROLLBACK


def test_a_healthy_miss_below_stables_pass_rate_is_explained_by_the_best_cut() -> None:
    def why(within_tolerance: float) -> str:
        rows = [
            _row("healthy: identical"),
            _row("healthy: within tolerance", false_rollback_rate=within_tolerance),
            _row("pass rate 90% -> 87%"),
        ]
        return "\n".join(why_missed(rows))

    missed = why(0.13)
    assert "healthy: within tolerance: its pass rate is 0.5 points below stable's" in missed
    best = quality_cut_false_rollbacks(HORIZON_MINUTES)["healthy: within tolerance"]
    assert f"rolls back {100 * best:.2f}% of these candidates" in missed
    within_steps = quality_cut_false_rollbacks(HORIZON_MINUTES, last_step_only=True)["healthy: identical"]
    assert f"rolls back {100 * within_steps:.2f}% of identical candidates" in missed
    assert "its pass rate is" not in why(0.005)
