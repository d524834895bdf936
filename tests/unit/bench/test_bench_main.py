"""`python -m bench.decisions` end to end, on a tiny grid."""

from __future__ import annotations

import json
from pathlib import Path

from bench.decisions.__main__ import main

REQUIRED = {
    "policy",
    "scenario",
    "rps",
    "replicates",
    "false_rollback_rate",
    "miss_rate",
    "undecided_rate",
    "mean_requests",
    "median_requests",
    "median_minutes",
    "wald_bound_requests",
}


def test_writes_the_table_and_the_rows(tmp_path: Path) -> None:
    argv = ["--replicates", "12", "--rps", "100", "--scenario", "errors 1% -> 5%", "--out", str(tmp_path)]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "decisions.json").read_text())
    assert {row["policy"] for row in rows} == {
        "threshold (limit 1)",
        "threshold (limit 2)",
        "threshold (limit 3)",
        "threshold-calibrated",
        "kayenta",
        "ours (sequential)",
        "oracle SPRT",
    }
    assert all(row.keys() >= REQUIRED and row["replicates"] == 12 for row in rows)
    assert {row["scenario"] for row in rows} == {"errors 1% -> 5%"}
    table = (tmp_path / "decisions.md").read_text()
    assert "python -m bench.decisions --replicates 12 --rps 100" in table
    assert "## Targets (our policy)" in table
