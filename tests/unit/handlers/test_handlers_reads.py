"""Window reads run in a pool per Prometheus host with a deadline: a slow host delays only its own
LLMDeployments, and a read past its deadline becomes an unavailable (inconclusive) window."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from llmrollout import rollout
from llmrollout.handlers.reads import MetricsReads

START = datetime(2026, 1, 1, tzinfo=UTC)
END = START + timedelta(seconds=30)


def server(delay: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def hosts() -> Iterator[tuple[str, str]]:
    fast, slow = server(0.0), server(3.0)
    yield (f"http://127.0.0.1:{fast.server_address[1]}", f"http://127.0.0.1:{slow.server_address[1]}")
    for httpd in (fast, slow):
        httpd.shutdown()
        httpd.server_close()


def reader(url: str) -> Any:
    def read() -> rollout.Observation:
        with httpx.Client(timeout=10) as http:
            http.get(url).raise_for_status()
        return rollout.Observation(START, END, unavailable=f"read {url}")

    return read


def test_a_slow_host_delays_only_its_own_reads(hosts: tuple[str, str]) -> None:
    fast, slow = hosts
    reads = MetricsReads(workers_per_host=2, quick_wait=0.2)
    try:
        # Three objects on the slow host: its two workers are busy, the third read queues.
        for key in ("a", "b", "c"):
            assert reads.observe(key, "slow", START, END, 60.0, reader(slow)) is None
        began = time.monotonic()
        done = reads.observe("d", "fast", START, END, 60.0, reader(fast))
        assert done is not None and done.unavailable == f"read {fast}"
        assert time.monotonic() - began < 1.0
        # The slow reads finish later and are picked up by a later reconcile.
        time.sleep(3.2)
        later = reads.observe("a", "slow", START, END, 60.0, reader(slow))
        assert later is not None and later.unavailable == f"read {slow}"
    finally:
        reads.close()


def test_a_read_past_its_deadline_is_unavailable(hosts: tuple[str, str]) -> None:
    _, slow = hosts
    reads = MetricsReads(quick_wait=0.1)
    try:
        assert reads.observe("a", "prometheus.slow", START, END, 1.0, reader(slow)) is None
        time.sleep(1.0)
        late = reads.observe("a", "prometheus.slow", START, END, 1.0, reader(slow))
        assert late is not None and late.window is None
        assert (
            late.unavailable
            == "Prometheus at prometheus.slow did not answer within 1s (the window's deadline)"
        )
    finally:
        reads.close()


def test_a_new_window_drops_the_stale_read_and_a_broken_read_is_unavailable() -> None:
    reads = MetricsReads(quick_wait=0.1)
    gate = threading.Event()

    def blocked() -> rollout.Observation:
        gate.wait(5)
        return rollout.Observation(START, END, unavailable="stale")

    def broken() -> rollout.Observation:
        raise RuntimeError("provider bug")

    try:
        assert reads.observe("a", "h", START, END, 60.0, blocked) is None
        moved = START + timedelta(minutes=1)
        result = reads.observe("a", "h", moved, END, 60.0, broken)
        assert result is not None and result.unavailable == "metrics read failed: RuntimeError: provider bug"
    finally:
        gate.set()
        reads.close()
