"""bench.idle's pure parts: CPU from /proc/<pid>/stat and the report's ratio."""

from __future__ import annotations

from bench.idle.__main__ import Result, cpu_seconds, report


def test_cpu_seconds_reads_utime_and_stime_past_a_command_with_spaces() -> None:
    stat = "1234 (python3 -m (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 100 0"
    assert cpu_seconds(stat, ticks=100) == 3.0


def test_the_report_gives_the_timers_cost_as_a_multiple_of_the_schedulers() -> None:
    table = report([Result("timer", 300, 60.0, 12.0), Result("heap", 300, 60.0, 0.5)])
    assert "| timer | 300 | 60 s | 12.00 | 0.2000 |" in table
    assert "timer / heap CPU: 24.0x" in table
    assert "x" not in report([Result("heap", 300, 60.0, 0.5)]).split("\n")[-1]
