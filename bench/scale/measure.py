"""Pure measurement helpers: CPU from /proc/<pid>/stat, percentiles, and the report's table."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(stat: str, ticks: int = CLOCK_TICKS) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds (the command may hold spaces and parens)."""
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the command: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    return (int(fields[11]) + int(fields[12])) / ticks


def status_kib(status: str, key: str) -> int:
    """A `Key:   123 kB` line of /proc/<pid>/status, in KiB (0 when absent)."""
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Point:
    n: int
    state: str  # idle | rolling
    reads: str  # batched | unbatched
    seconds: float
    cpu_cores: float
    rss_mb: float
    queries_per_s: float
    writes_per_s: float
    lag_p50_s: float | None
    lag_p95_s: float | None
    decisions: int
    look_interval_s: float
    notes: str = ""
    # After a window closed, when its analysis was written (None: not measured, in older runs).
    delay_p50_s: float | None = None
    delay_p95_s: float | None = None
    # Rolling points: of `same_compared` LLMDeployments, how many read an equal window batched and
    # alone, and made the same decision from each (None: not compared, e.g. idle; see same.py).
    same_compared: int | None = None
    same_windows: int | None = None
    same_decisions: int | None = None
    # How long ago each rolling LLMDeployment's last analysis was written (None: older runs).
    since_p50_s: float | None = None
    since_p95_s: float | None = None

    @property
    def same_as_unbatched(self) -> bool:
        compared = self.same_compared
        return bool(compared) and self.same_windows == self.same_decisions == compared

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _num(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def same_cell(point: Point) -> str:
    n = point.same_compared
    return "-" if n is None else f"{point.same_windows}/{n}, {point.same_decisions}/{n}"


def markdown(points: Sequence[Point], facts: Mapping[str, str]) -> str:
    lines = ["# bench/scale", ""]
    lines += [f"- {k}: {v}" for k, v in facts.items()]
    lines += [
        "",
        "| LLMDeployments | state | reads | operator CPU | peak RSS | Prometheus queries/s | API writes/s "
        "| last analysis written ago p50 / p95 | window age p50 / p95 | written after window end p50 / p95 "
        "| decisions | same as unbatched: windows, decisions | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        since = f"{_num(p.since_p50_s, ' s', 1)} / {_num(p.since_p95_s, ' s', 1)}"
        lag = f"{_num(p.lag_p50_s, ' s', 1)} / {_num(p.lag_p95_s, ' s', 1)}"
        delay = f"{_num(p.delay_p50_s, ' s', 1)} / {_num(p.delay_p95_s, ' s', 1)}"
        lines.append(
            f"| {p.n} | {p.state} | {p.reads} | {p.cpu_cores:.3f} cores | {p.rss_mb:.0f} MB "
            f"| {p.queries_per_s:.1f} | {p.writes_per_s:.2f} | {since} | {lag} | {delay} | {p.decisions} "
            f"| {same_cell(p)} | {p.notes} |"
        )
    lines += [
        "",
        "Last analysis written ago (the analysis lag of issue 13): now - when the status carrying each"
        " rolling LLMDeployment's latest analysis arrived on a watch, sampled every 3 s, against the look"
        f" interval ({points[0].look_interval_s:g} s); an operator that keeps up stays within one interval."
        if points
        else "",
        "Window age: now - status.lastAnalysisAt, the end of the window analysed last; it is read a"
        " moment after it closes, so a prompt operator's window age ranges over one interval plus the"
        " time its analysis takes to be written (the next column).",
        "Written after window end: when a new status.lastAnalysisAt arrived on the watch, less that time.",
        "Same as unbatched: after the rolling measurement, one closed window read for every"
        " LLMDeployment through the operator's batched path and by its own provider alone: how many"
        " Windows were equal, and how many decisions the state machine made alike from each (from the"
        " deployment's spec and status at that moment); any that differed are named in the notes.",
        "API writes: MODIFIED watch events of the LLMDeployments plus Events written in the namespace.",
        "Prometheus queries: the increase of Prometheus's own prometheus_http_requests_total for "
        "/api/v1/query over the measurement.",
    ]
    return "\n".join(lines) + "\n"
