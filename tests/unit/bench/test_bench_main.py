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
    "scrape_seconds",
    "horizon_minutes",
    "must_catch",
    "correct_rate",
    "false_rollback_upper95",
    "promoted_rate",
    "horizon_promoted_rate",
    "horizon_rolled_back_rate",
    "mean_requests_promoted",
    "mean_requests_rolled_back",
    "mean_minutes_promoted",
    "p90_minutes_promoted",
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
    assert "## Targets (issue 9's acceptance, our policy)" in table
    assert {row["scrape_seconds"] for row in rows} == {15.0}  # other intervals only at 10 rps
    assert "Decision code: llmrollout from " in table
    # --render rewrites the report from the rows, keeping the command and the decision code.
    (tmp_path / "decisions.md").write_text(table.replace("## Setup", "## Stale"))
    assert main(["--render", "--out", str(tmp_path)]) == 0
    rendered = (tmp_path / "decisions.md").read_text()
    assert "## Setup" in rendered and "## Stale" not in rendered
    assert rendered.splitlines()[:5] == table.splitlines()[:5]


def test_other_scrape_intervals_run_ours_on_healthy_scenarios_and_design_points(tmp_path: Path) -> None:
    argv = ["--replicates", "8", "--rps", "10", "--scenario", "errors 1% -> 2%", "--out", str(tmp_path)]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "decisions.json").read_text())
    extra = [row for row in rows if row["scrape_seconds"] != 15.0]
    assert {(row["scrape_seconds"], row["policy"]) for row in extra} == {
        (60.0, "ours (sequential)"),
        (1.0, "ours (sequential)"),
    }
    assert all(row["must_catch"] for row in rows)
    ours = [row for row in rows if row["policy"] == "ours (sequential)"]
    # Ours decides every rollout by the horizon; the horizon's share is reported.
    assert all(row["undecided_rate"] == 0.0 and row["horizon_promoted_rate"] is not None for row in ours)
    oracle = [row for row in rows if row["policy"] == "oracle SPRT"]
    assert oracle and oracle[0]["mean_requests_rolled_back"] is not None
    table = (tmp_path / "decisions.md").read_text()
    assert "## 10 requests/s, 60 s scrapes" in table


def test_ours_also_runs_at_the_planned_horizon_on_traces_that_long(tmp_path: Path) -> None:
    # Shorter than the default, so that a policy ignoring it would leave rollouts undecided when the
    # 30-minute traces end.
    argv = ["--replicates", "12", "--rps", "10", "--scenario", "healthy: identical", "--scrape"]
    assert main([*argv, "--planned-horizon", "10=30", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "decisions.json").read_text())
    shorter = [row for row in rows if row["policy"] == "ours, 30-minute horizon"]
    assert len(shorter) == 1 and shorter[0]["horizon_minutes"] == 30
    assert shorter[0]["undecided_rate"] == 0.0 and shorter[0]["p90_minutes_promoted"] <= 30
    assert (shorter[0]["horizon_promoted_rate"] or 0.0) > 0  # most are still open at minute 30
    assert all(row["horizon_minutes"] == 60 for row in rows if row not in shorter)
    table = (tmp_path / "decisions.md").read_text()
    assert "### A 30-minute horizon at 10 requests/s" in table


def test_planned_rows_are_added_to_a_run_without_running_it_again(tmp_path: Path) -> None:
    first = ["--replicates", "12", "--rps", "10", "--scenario", "healthy: identical", "--scrape"]
    assert main([*first, "--planned-horizon", "--out", str(tmp_path)]) == 0
    before = json.loads((tmp_path / "decisions.json").read_text())
    header = (tmp_path / "decisions.md").read_text().splitlines()[:5]
    assert {row["horizon_minutes"] for row in before} == {60}
    add = ["--add", "--replicates", "12", "--rps", "10", "--scenario", "healthy: identical"]
    assert main([*add, "--planned-horizon", "10=30", "--jobs", "2", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "decisions.json").read_text())
    added = [row for row in rows if row.get("added_by")]
    assert rows[: len(before)] == before and len(added) == 1 == len(rows) - len(before)
    assert added[0]["policy"] == "ours, 30-minute horizon" and added[0]["undecided_rate"] == 0.0
    table = (tmp_path / "decisions.md").read_text()
    assert table.splitlines()[:5] == header  # still the first run's command and decision code
    assert (
        "Rows of ours, 30-minute horizon at 10 requests/s added by `python -m bench.decisions --add" in table
    )
    assert "### A 30-minute horizon at 10 requests/s" in table
    # Adding again replaces those rows; one process gives what two did.
    assert main([*add, "--planned-horizon", "10=30", "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "decisions.json").read_text())
    assert len(again) == len(rows)
    assert {k: v for k, v in again[-1].items() if k != "added_by"} == {
        k: v for k, v in added[0].items() if k != "added_by"
    }
