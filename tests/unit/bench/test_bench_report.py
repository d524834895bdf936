"""The report's targets: each met or missed, and by how much."""

from __future__ import annotations

from typing import Any

from bench.decisions.model import scenario
from bench.decisions.report import ORACLE, OURS, targets


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
