"""Windows under production scrapes, against the real Prometheus (no cluster needed).

Prometheus scrapes a prometheus_client exporter every 15 s while a background thread counts requests
and errors (the error series appear with the first error, as real clients create them) and the
exporter restarts once (its counters drop to 0). The provider then reads consecutive 30 s and 10 s
windows: their sum must equal the exporter's true increase, and no window may be empty merely because
it holds fewer than two samples. `increase(x[30s])`, which the operator used to read, is shown beside.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.registry import Collector

from llmrollout.metrics import PRESETS
from llmrollout.metrics.prometheus import PrometheusProvider
from tests.e2e.harness.prometheus import PrometheusServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

SCRAPE = 15.0
LOOPBACK = "127.0.0.1"
DURATION = "gen_ai_client_operation_duration_seconds"


class Restartable(Collector):
    """Serves whichever registry is current: a new one is what a restarted process exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def collect(self) -> Iterable[object]:  # type: ignore[override]
        return self.registry.collect()


class Exporter:
    """OTel-named request counts for variants v1 and v2, with a truth of every increment."""

    def __init__(self) -> None:
        self.proxy = Restartable()
        served = CollectorRegistry()
        served.register(self.proxy)  # type: ignore[arg-type]
        self.server, self.thread = start_http_server(0, addr=LOOPBACK, registry=served)
        self.target = f"{LOOPBACK}:{self.server.server_port}"
        self.lock = threading.Lock()
        self.truth = {("v1", ""): 0, ("v2", ""): 0, ("v2", "timeout"): 0}
        self.restart()

    def restart(self) -> None:
        with self.lock:
            self.proxy.registry = CollectorRegistry()
            self.duration = Histogram(
                DURATION, "", ["variant", "error_type"], buckets=(1.0,), registry=self.proxy.registry
            )
            # Success series exist from the start; the error series only with the first error.
            self.duration.labels("v1", "")
            self.duration.labels("v2", "")

    def request(self, variant: str, error: bool) -> None:
        key = (variant, "timeout" if error else "")
        with self.lock:
            self.duration.labels(*key).observe(0.5)
            self.truth[key] += 1

    def value(self, variant: str, error_type: str) -> float:
        with self.lock:
            for metric in self.proxy.registry.collect():
                for sample in metric.samples:
                    if sample.name == f"{DURATION}_count" and sample.labels == {
                        "variant": variant,
                        "error_type": error_type,
                    }:
                        return float(sample.value)
        return 0.0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def production(tmp_path: Path) -> Iterator[tuple[PrometheusServer, Exporter]]:
    exporter = Exporter()
    server = PrometheusServer(tmp_path / "prometheus", scrape_interval=SCRAPE)
    try:
        server.start()
        server.set_targets("exporter", [exporter.target], {"job_role": "model"})
        server.wait_for_targets({"job_role": "model"}, 1, timeout=40)
        yield server, exporter
    finally:
        server.stop()
        exporter.close()


def scraped(server: PrometheusServer, exporter: Exporter, timeout: float = 40.0) -> float:
    """Waits for a scrape that holds the exporter's current values; returns that scrape's timestamp."""
    want = exporter.value("v2", "")
    server.wait_until(
        f'{DURATION}_count{{variant="v2",error_type=""}}',
        lambda samples: bool(samples) and samples[0].value == want,
        timeout=timeout,
        what="a scrape with the current counts",
    )
    stamp = server.query_value(f'timestamp({DURATION}_count{{variant="v2",error_type=""}})')
    assert stamp is not None
    return stamp


def traffic(exporter: Exporter, seconds: float, rate: float, stop: threading.Event) -> None:
    i = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        exporter.request("v1" if i % 3 else "v2", error=i % 3 == 0 and i % 2 == 0)
        i += 1
        time.sleep(1 / rate)


def test_consecutive_windows_add_up_to_the_true_increase_at_15s_scrapes(
    production: tuple[PrometheusServer, Exporter],
) -> None:
    server, exporter = production
    begin = scraped(server, exporter)  # the zero-valued success series are in Prometheus
    stop = threading.Event()
    worker = threading.Thread(target=traffic, args=(exporter, 50, 4.0, stop))
    worker.start()
    worker.join()
    # A restart right after a scrape: the counters drop to 0 and count on.
    scraped(server, exporter)
    before_restart = dict(exporter.truth)
    exporter.restart()
    worker = threading.Thread(target=traffic, args=(exporter, 40, 4.0, stop))
    worker.start()
    worker.join()
    end = scraped(server, exporter)
    assert exporter.truth[("v2", "timeout")] > before_restart[("v2", "timeout")] > 0

    with httpx.Client(timeout=10.0) as client:
        provider = PrometheusProvider(
            client, server.address, PRESETS["openTelemetryGenAI"], namespace="n", scrape_interval=SCRAPE
        )
        for window in (30.0, 10.0):
            edges = [begin + k * window for k in range(math.ceil((end - begin) / window) + 1)]
            reads = [provider.read(["v1", "v2"], a, b) for a, b in itertools.pairwise(edges)]
            requests = {v: [r.variants[v].requests for r in reads] for v in ("v1", "v2")}
            errors = [r.variants["v2"].errors for r in reads]
            # No window is empty: a window without a scrape reads 0 requests, never "no data".
            assert all(x is not None for v in requests.values() for x in v), (window, requests)
            assert all(x is not None for x in errors), (window, errors)
            total_v1 = sum(x or 0.0 for x in requests["v1"])
            total_v2 = sum(x or 0.0 for x in requests["v2"])
            print(
                f"\n{window:g}s windows at {SCRAPE:g}s scrapes: {len(reads)} windows; v1 {total_v1:g} "
                f"(true {exporter.truth[('v1', '')]}), v2 {total_v2:g} (true "
                f"{exporter.truth[('v2', '')] + exporter.truth[('v2', 'timeout')]}), v2 errors "
                f"{sum(x or 0.0 for x in errors):g} (true {exporter.truth[('v2', 'timeout')]})"
            )
            assert total_v1 == exporter.truth[("v1", "")]
            assert total_v2 == exporter.truth[("v2", "")] + exporter.truth[("v2", "timeout")]
            assert sum(x or 0.0 for x in errors) == exporter.truth[("v2", "timeout")]

    # What increase() over the same looks gives: extrapolated, and empty with fewer than two samples.
    for window in (30, 10):
        legacy = []
        for a in range(int(begin), int(end) - window + 1, window):
            got = server.query(f'sum(increase({DURATION}_count{{variant="v1"}}[{window}s]))', at=a + window)
            legacy.append(round(got[0].value, 1) if got else None)
        print(
            f"increase(x[{window}s]) per window, v1: {legacy}; sum {sum(x or 0 for x in legacy):g}; "
            f"empty: {sum(x is None for x in legacy)} of {len(legacy)}"
        )
