"""bench/scale's pure parts: /proc parsing, percentiles, the simulated fleet's exposition, the report."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.scale.__main__ import WriteCounter
from bench.scale.combine import combined
from bench.scale.fleet import exposition
from bench.scale.measure import Point, cpu_seconds, markdown, percentile, status_kib


def test_cpu_seconds_reads_utime_and_stime_past_a_command_with_spaces_and_parens() -> None:
    stat = "4242 (python (x) y) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 1 0 100 0 0"
    assert cpu_seconds(stat, ticks=100) == 4.0


def test_status_kib() -> None:
    status = "Name:\tpython\nVmHWM:\t  123456 kB\nVmRSS:\t 100 kB\n"
    assert status_kib(status, "VmHWM") == 123456
    assert status_kib(status, "VmSwap") == 0


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 50, None), ([3.0], 95, 3.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.5), ([1.0, 2.0, 3.0], 100, 3.0)],
)
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


def test_the_fleet_exports_every_deployments_series_apart() -> None:
    text = exposition(["d0", "d1"], ["v1", "v2"], elapsed=10.0)
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    counts = {
        (s.labels["llmd"], s.labels["variant"]): s.value
        for s in samples
        if s.name == "gen_ai_client_operation_duration_seconds_count"
    }
    assert counts == {(d, v): 20.0 for d in ("d0", "d1") for v in ("v1", "v2")}
    # Healthy: the TTFT buckets put every request under 250 ms, and no error series exists.
    assert not any("error_type" in s.labels for s in samples)


def test_markdown_has_a_row_per_point() -> None:
    point = Point(100, "rolling", "batched", 90.0, 0.2, 150.0, 12.0, 7.0, 8.0, 16.0, 40, 15.0)
    timed = Point(300, "rolling", "batched", 90.0, 0.2, 150.0, 12.0, 7.0, 8.0, 16.0, 40, 15.0, "", 1.2, 2.5)
    timed = dataclasses.replace(timed, since_p50_s=6.0, since_p95_s=13.5)
    report = markdown([point, timed], {"operator commit measured": "abc1234"})
    row = "| rolling | batched | 0.200 cores | 150 MB | 12.0 | 7.00 |"
    assert f"| 100 {row} - / - | 8.0 s / 16.0 s | - / - | 40 |" in report
    assert f"| 300 {row} 6.0 s / 13.5 s | 8.0 s / 16.0 s | 1.2 s / 2.5 s | 40 |" in report
    assert "abc1234" in report


def _status(name: str, phase: str, at: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "status": {"phase": phase, "lastAnalysisAt": at}}


def test_lags_come_from_the_watch_and_a_listed_write_counts_from_its_window_end() -> None:
    counter = WriteCounter(None)  # never started: no API calls
    counter._note(_status("a", "Progressing", "2026-01-01T00:00:00Z"), arrived=False)
    counter._note(_status("b", "Progressing", "2026-01-01T00:00:00Z"), arrived=False)
    counter._note(_status("c", "Promoted", "2026-01-01T00:00:00Z"), arrived=False)
    counter._note(_status("b", "Progressing", "2026-01-01T00:00:15Z"), arrived=True)
    arrived = counter._seen["b"].analysed
    assert arrived is not None and counter.delays and counter.delays[0] > 0
    now = datetime(2026, 1, 1, 0, 0, 20, tzinfo=UTC)
    ages, since = counter.sample(now)
    # a: listed only, so counted since its window ended (20 s); b: since its write arrived; c: not rolling.
    assert sorted(ages) == [5.0, 20.0]
    assert sorted(since) == sorted([20.0, (now - arrived).total_seconds()])
    counter._note(_status("b", "Progressing", "2026-01-01T00:00:15Z"), arrived=True)  # no new look
    assert counter._seen["b"].analysed == arrived and len(counter.delays) == 1


def test_sampling_waits_until_every_rolling_object_was_seen_written() -> None:
    counter = WriteCounter(None)  # never started: no API calls
    counter._note(_status("a", "Progressing", "2026-01-01T00:00:00Z"), arrived=False)
    counter._note(_status("b", "Promoted", "2026-01-01T00:00:00Z"), arrived=False)
    assert not counter.wait_written(0.6)  # a's analysis was only listed
    counter._note(_status("a", "Progressing", "2026-01-01T00:00:15Z"), arrived=True)
    assert counter.wait_written(0.6)  # b is not rolling: it writes no analysis


def test_combined_runs_keep_each_runs_commit() -> None:
    point = Point(100, "rolling", "batched", 90.0, 0.2, 150.0, 12.0, 7.0, 8.0, 16.0, 40, 15.0).to_json()
    runs = [
        {"facts": {"run": "before", "operator commit measured": "aaa1111"}, "points": [point]},
        {"facts": {"run": "after", "operator commit measured": "bbb2222"}, "points": [point]},
    ]
    report = combined(runs)
    assert (
        report.index("## before")
        < report.index("aaa1111")
        < report.index("## after")
        < report.index("bbb2222")
    )
