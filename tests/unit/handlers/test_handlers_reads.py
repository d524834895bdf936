"""Window reads run in a pool per Prometheus host with a deadline: a slow host delays only its own
LLMDeployments, and a read past its deadline becomes an unavailable (inconclusive) window."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from llmrollout import rollout
from llmrollout.handlers.reads import BATCH_READS_ENV, Batched, MetricsReads, _Batch, _run_batch

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


# --- batches --------------------------------------------------------------------------------------


def _recording_run(calls: list[list[str]]) -> Any:
    def run(members: Any) -> list[rollout.Observation]:
        calls.append(list(members))
        return [rollout.Observation(START, END, unavailable=f"read {m}") for m in members]

    return run


def _wait(reads: MetricsReads, key: str, batched: Batched) -> rollout.Observation:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        result = reads.observe(key, "h", START, END, 60.0, lambda: pytest.fail("read alone"), batched)
        if result is not None:
            return result
    raise AssertionError(f"no observation for {key}")


def test_reads_of_one_group_asked_together_run_as_one_batch_and_each_gets_its_own() -> None:
    calls: list[list[str]] = []
    run = _recording_run(calls)
    reads = MetricsReads(quick_wait=0.0, gather=0.3, batching=True)
    try:
        keys = [f"ns{i}/d" for i in range(5)]
        for key in keys:
            assert reads.observe(key, "h", START, END, 60.0, pytest.fail, Batched("g", key, run)) is None
        # Another group on the same host is another batch.
        other = Batched("other", "x/d", run)
        results = {key: _wait(reads, key, Batched("g", key, run)) for key in keys}
        assert _wait(reads, "x/d", other).unavailable == "read x/d"
    finally:
        reads.close()
    assert {key: r.unavailable for key, r in results.items()} == {key: f"read {key}" for key in keys}
    assert sorted(map(sorted, calls)) == sorted([["x/d"], sorted(keys)])


def test_a_failed_batch_makes_each_members_window_unavailable() -> None:
    def broken(members: Any) -> list[rollout.Observation]:
        raise RuntimeError("provider bug")

    def short(members: Any) -> list[rollout.Observation]:
        return []

    reads = MetricsReads(quick_wait=0.0, gather=0.05, batching=True)
    try:
        for run in (broken, short):
            results = [_wait(reads, f"{run.__name__}{i}", Batched(run.__name__, i, run)) for i in range(2)]
            assert all(r.unavailable and r.unavailable.startswith("metrics read failed") for r in results)
    finally:
        reads.close()


def test_batching_off_reads_each_window_alone() -> None:
    reads = MetricsReads(quick_wait=1.0, batching=False)
    try:
        alone = rollout.Observation(START, END, unavailable="alone")
        result = reads.observe("a", "h", START, END, 60.0, lambda: alone, Batched("g", "a", pytest.fail))
        assert result == alone
    finally:
        reads.close()


@pytest.mark.parametrize(("value", "on"), [(None, True), ("1", True), ("0", False), ("off", False)])
def test_batching_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, on: bool
) -> None:
    if value is None:
        monkeypatch.delenv(BATCH_READS_ENV, raising=False)
    else:
        monkeypatch.setenv(BATCH_READS_ENV, value)
    reads = MetricsReads()
    assert reads.batching is on
    reads.close()


def test_with_a_scheduler_a_batched_read_never_holds_the_reconcile_and_its_end_wakes_the_object() -> None:
    calls: list[list[str]] = []
    woken: list[str] = []
    ready = threading.Event()
    reads = MetricsReads(quick_wait=30.0, gather=0.2, batching=True)
    reads.on_ready = lambda key: (woken.append(key), ready.set())
    try:
        started = time.monotonic()
        batched = Batched("g", "a", _recording_run(calls))
        assert reads.observe("ns/a", "h", START, END, 60.0, pytest.fail, batched) is None
        assert time.monotonic() - started < 10.0, "the reconcile waited for its batch (quick_wait)"
        remaining = reads.waiting("ns/a")
        assert remaining is not None and 0 < remaining <= 60.0
        assert reads.waiting("ns") is None and reads.waiting("ns/b") is None
        preflight = Batched("g", "a#preflight", _recording_run(calls))
        assert reads.observe("ns/a#preflight", "h", START, END, 30.0, pytest.fail, preflight) is None
        both = reads.waiting("ns/a")
        assert both is not None and both <= 30.0, "the nearest deadline of the object's reads"
        deadline = time.monotonic() + 10
        while len(woken) < 2 and time.monotonic() < deadline:
            ready.wait(0.1)
        assert sorted(woken) == ["ns/a", "ns/a#preflight"]
        assert reads.waiting("ns/a") is None
        result = reads.observe("ns/a", "h", START, END, 60.0, pytest.fail, batched)
        assert result is not None and result.unavailable == "read a"
    finally:
        reads.close()


def test_a_batch_reads_only_the_members_still_waited_for() -> None:
    calls: list[list[str]] = []
    run = _recording_run(calls)
    given_up: Future[rollout.Observation] = Future()
    waited: Future[rollout.Observation] = Future()
    assert given_up.cancel()
    _run_batch(_Batch(run, ["late", "live"], [given_up, waited]))
    assert calls == [["live"]]
    assert waited.result(0).unavailable == "read live"
    nobody: Future[rollout.Observation] = Future()
    nobody.cancel()
    _run_batch(_Batch(run, ["gone"], [nobody]))
    assert calls == [["live"]], "a batch nobody waits for is not read"


def test_a_read_past_its_deadline_is_given_up_so_a_queued_batch_skips_it() -> None:
    now = [0.0]
    reads = MetricsReads(quick_wait=0.0, gather=30.0, batching=True, clock=lambda: now[0])
    try:
        batched = Batched("g", "a", _recording_run([]))
        assert reads.observe("ns/a", "h", START, END, 15.0, pytest.fail, batched) is None
        now[0] = 16.0
        late = reads.observe("ns/a", "h", START, END, 15.0, pytest.fail, batched)
        assert late is not None and late.unavailable and "did not answer within 15s" in late.unavailable
        (batch,) = reads._batches.values()
        assert all(f.cancelled() for f in batch.futures)
    finally:
        reads.close()
