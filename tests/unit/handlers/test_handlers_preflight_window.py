"""The series check (MetricsReady, `llmrollout check`) judges a series by whether Prometheus holds it
when asked: by a table over scrape intervals, series ages and the three ways a check is read (in the
caller's thread, alone in a read pool, batched), against an in-memory TSDB."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmrollout import rollout
from llmrollout.api import LLMDeploymentSpec, LLMDeploymentStatus
from llmrollout.handlers import reconciler
from llmrollout.handlers.reads import MetricsReads
from tests.unit.metrics.test_metrics_responses import TSDB, mock_prometheus

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TARGET = {"job": "bot-v1", "instance": "10.0.0.1:8000"}
DURATION = "gen_ai_client_operation_duration_seconds_count"
TTFT = "gen_ai_server_time_to_first_token_seconds_bucket"


def _spec(scrape_interval: str) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate(
        {
            "variants": [
                {"name": "v1", "model": "m", "backendRef": {"name": "a", "port": 80}},
                {"name": "v2", "model": "m", "backendRef": {"name": "b", "port": 80}},
            ],
            "stable": "v1",
            "candidate": "v2",
            "traffic": {"router": "none"},
            "metrics": {
                "prometheus": {"address": "http://prometheus.test:9090", "scrapeInterval": scrape_interval}
            },
            "slos": {"errorRate": {"max": 0.05}, "ttft": {"p95": "800ms"}},
        }
    )


def _tsdb(sample_times: list[float]) -> TSDB:
    """v1's series (and its target's `up`), sampled at `sample_times`, never moved from 0: the check
    must not need traffic. v2 has none."""
    db = TSDB()
    at_zero = [(t, 0.0) for t in sample_times]
    db.add("up", TARGET, *[(t, 1.0) for t in sample_times])
    db.add(DURATION, {**TARGET, "variant": "v1", "error_type": ""}, *at_zero)
    for le in ("0.5", "+Inf"):
        db.add(TTFT, {**TARGET, "variant": "v1", "le": le}, *at_zero)
    return db


def _check(scrape_interval: str, now: float, db: TSDB, reads: str) -> rollout.Preflight:
    spec = _spec(scrape_interval)
    pool = None if reads == "caller" else MetricsReads(batching=reads == "batched")
    with mock_prometheus(db.answer) as http:
        clients = reconciler.Clients(None, http, reads=pool)
        try:
            preflight = reconciler._preflight(
                clients, spec, LLMDeploymentStatus(), "team-a", datetime.fromtimestamp(now, UTC), key="a/b"
            )
        finally:
            if pool is not None:
                pool.close()
    assert preflight is not None and not preflight.checking
    return preflight


# (scrapeInterval, now - T0, v1's sample times - T0, found): found means MetricsReady=True.
CASES: list[tuple[str, float, list[float], bool]] = [
    # Prometheus's first scrape of the servers, a moment before the LLMDeployment is created.
    ("1s", 100.3, [100.1], True),
    ("1s", 100.05, [100.0], True),
    ("1s", 100.95, [100.0], True),
    ("5s", 102.0, [101.9], True),
    ("15s", 100.3, [100.1], True),
    ("1m", 119.9, [60.0, 119.8], True),
    ("1m", 61.0, [60.5], True),
    # Scraped for a while, the last scrape a few intervals old: present.
    ("15s", 200.0, [100.0, 115.0, 130.0, 145.0, 160.0], True),
    # An idle series, last sampled 40 minutes ago (a stopped target within the look-back): present.
    ("15s", 2500.0, [100.0], True),
    # Never sampled, or last sampled beyond the hour's look-back: missing.
    ("1s", 100.3, [], False),
    ("15s", 7400.0, [100.0], False),
]


@pytest.mark.parametrize("reads", ["caller", "alone", "batched"])
@pytest.mark.parametrize(("interval", "now", "times", "found"), CASES)
def test_a_series_is_found_when_prometheus_holds_it(
    interval: str, now: float, times: list[float], found: bool, reads: str
) -> None:
    preflight = _check(interval, T0 + now, _tsdb([T0 + t for t in times]), reads)
    report = rollout.metrics_report(_spec(interval), preflight, "v1", "v2")
    if found:
        assert report.blocking is None, report.lines()
        assert report.summary().startswith("every SLO's series found on v1"), report.summary()
    else:
        assert report.blocking is not None and report.blocking.startswith("series missing on v1"), report
        assert set(preflight.missing["v1"]) >= {"requests", "errors", "ttft"}, preflight.missing
    # v2 never had a series: reported as missing in every case, never required.
    assert {"requests", "ttft"} <= set(preflight.missing["v2"])


def test_llmrollout_check_finds_a_series_scraped_a_moment_ago() -> None:
    spec = _spec("1s")
    with mock_prometheus(_tsdb([T0 + 100.1]).answer) as http:
        preflight = reconciler.check_series(
            reconciler.Clients(None, http),
            spec,
            "team-a",
            ["v1", "v2"],
            datetime.fromtimestamp(T0 + 100.3, UTC),
        )
    report = rollout.metrics_report(spec, preflight, "v1", "v2")
    assert report.blocking is None, report.lines()
