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


def server(gate: threading.Event | None) -> ThreadingHTTPServer:
    """An HTTP server that answers at once, or (with `gate`) only once the gate is set."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if gate is not None:
                gate.wait(30)
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
def slow_gate() -> threading.Event:
    """Set it to let the slow host answer (it is set at the end of each test)."""
    return threading.Event()


@pytest.fixture
def hosts(slow_gate: threading.Event) -> Iterator[tuple[str, str]]:
    fast, slow = server(None), server(slow_gate)
    yield (f"http://127.0.0.1:{fast.server_address[1]}", f"http://127.0.0.1:{slow.server_address[1]}")
    slow_gate.set()
    for httpd in (fast, slow):
        httpd.shutdown()
        httpd.server_close()


def _answer(reads: MetricsReads, key: str, host: str, url: str) -> rollout.Observation:
    """Asks for `key`'s window until it is answered (a reconcile's later ticks)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        result = reads.observe(key, host, START, END, 60.0, reader(url))
        if result is not None:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{key} was never answered")


def reader(url: str) -> Any:
    def read() -> rollout.Observation:
        with httpx.Client(timeout=10) as http:
            http.get(url).raise_for_status()
        return rollout.Observation(START, END, unavailable=f"read {url}")

    return read


def test_a_slow_host_delays_only_its_own_reads(hosts: tuple[str, str], slow_gate: threading.Event) -> None:
    fast, slow = hosts
    reads = MetricsReads(workers_per_host=2, quick_wait=0.2)
    try:
        # Three objects on the slow host: its two workers are busy, the third read queues.
        for key in ("a", "b", "c"):
            assert reads.observe(key, "slow", START, END, 60.0, reader(slow)) is None
        # The fast host's read is answered while the slow host still holds all three of its own.
        assert _answer(reads, "d", "fast", fast).unavailable == f"read {fast}"
        assert reads.waiting("a") is not None and reads.waiting("c") is not None
        # The slow reads finish later and are picked up by a later reconcile.
        slow_gate.set()
        assert _answer(reads, "a", "slow", slow).unavailable == f"read {slow}"
        assert _answer(reads, "c", "slow", slow).unavailable == f"read {slow}"
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


def test_a_broken_read_is_unavailable() -> None:
    reads = MetricsReads(quick_wait=0.1)

    def broken() -> rollout.Observation:
        raise RuntimeError("provider bug")

    try:
        result = reads.observe("a", "h", START, END, 60.0, broken)
        assert result is not None and result.unavailable == "metrics read failed: RuntimeError: provider bug"
    finally:
        reads.close()


# --- windows that move while a read runs (a fake clock; reads that end when the test says) ---------

LATE = "Prometheus at h did not answer within 30s (the window's deadline)"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Reads:
    """Reads that run until released, each recorded by the window it was started for."""

    def __init__(self) -> None:
        self.started: list[datetime] = []
        self.gates: list[threading.Event] = []
        self.done: list[threading.Event] = []

    def read(self, start: datetime, answer: str | None = None, fails: bool = False) -> Any:
        def run() -> rollout.Observation:
            self.started.append(start)
            gate, done = threading.Event(), threading.Event()
            self.gates.append(gate)
            self.done.append(done)
            gate.wait(10)
            try:
                if fails:
                    raise RuntimeError("connection reset")
                if answer is None:
                    return rollout.Observation(start, start + timedelta(minutes=1), window=WINDOW)
                return rollout.Observation(start, start + timedelta(minutes=1), unavailable=answer)
            finally:
                done.set()

        return run

    def release(self, index: int) -> None:
        """Lets read `index` end, and waits until it has (its future is then settled)."""
        for _ in range(200):
            if len(self.gates) > index:
                break
            time.sleep(0.01)
        self.gates[index].set()
        self.done[index].wait(5)
        time.sleep(0.05)  # the pool sets the future just after the read returns


WINDOW: Any = object()  # stands for a read window: only its identity is compared
MINUTE = timedelta(minutes=1)


def at(minutes: int) -> tuple[datetime, datetime]:
    return START + minutes * MINUTE, START + (minutes + 1) * MINUTE


def wait_started(reads: Reads, count: int) -> None:
    for _ in range(200):
        if len(reads.started) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{count} reads not started: {reads.started}")


@pytest.fixture
def clocked() -> Iterator[tuple[MetricsReads, Clock, Reads]]:
    clock = Clock()
    reads = MetricsReads(quick_wait=0.0, clock=clock, batching=False)
    runs = Reads()
    yield reads, clock, runs
    for gate in runs.gates:
        gate.set()
    reads.close()


@pytest.mark.parametrize("moved_after", [1.0, 15.0, 29.9])
def test_a_read_in_flight_across_a_window_boundary_times_out_at_its_first_deadline(
    clocked: tuple[MetricsReads, Clock, Reads], moved_after: float
) -> None:
    reads, clock, runs = clocked
    assert reads.observe("a", "h", *at(0), 30.0, runs.read(at(0)[0])) is None
    wait_started(runs, 1)
    clock.now = moved_after
    # The window moves on (a scrape-interval boundary): the read goes on, none is added.
    assert reads.observe("a", "h", *at(1), 30.0, runs.read(at(1)[0])) is None
    clock.now = 30.0
    late = reads.observe("a", "h", *at(1), 30.0, runs.read(at(1)[0]))
    assert late == rollout.Observation(*at(1), unavailable=LATE)
    assert runs.started == [at(0)[0]]


def test_a_late_read_is_said_again_until_it_ends_and_then_prometheus_is_asked_again(
    clocked: tuple[MetricsReads, Clock, Reads],
) -> None:
    reads, clock, runs = clocked
    assert reads.observe("a", "h", *at(0), 30.0, runs.read(at(0)[0])) is None
    clock.now = 30.0
    assert reads.observe("a", "h", *at(0), 30.0, runs.read(at(0)[0])) == rollout.Observation(
        *at(0), unavailable=LATE
    )
    # Still hung: every tick and every later window gets the same words, and no second read.
    for minutes, now in ((0, 31.0), (1, 60.0), (2, 130.0)):
        clock.now = now
        said = reads.observe("a", "h", *at(minutes), 30.0, runs.read(at(minutes)[0]))
        assert said == rollout.Observation(*at(minutes), unavailable=LATE)
    wait_started(runs, 1)
    assert runs.started == [at(0)[0]]
    # The hung read ends (the client's own deadline): Prometheus is asked again, and a recovered
    # one is the next window's answer.
    runs.release(0)
    assert reads.observe("a", "h", *at(2), 30.0, runs.read(at(2)[0])) is None
    runs.release(1)
    assert reads.observe("a", "h", *at(2), 30.0, runs.read(at(2)[0])) == rollout.Observation(
        *at(2), window=WINDOW
    )
    assert runs.started == [at(0)[0], at(2)[0]]


def test_a_read_reported_late_is_no_longer_waited_for(clocked: tuple[MetricsReads, Clock, Reads]) -> None:
    # What the liveness probe relies on: a reconcile waiting on a read is no success yet, but one
    # whose read was reported late (a hung Prometheus, said in a condition) did its work.
    reads, clock, runs = clocked
    assert reads.observe("a", "h", *at(0), 30.0, runs.read(at(0)[0])) is None
    clock.now = 10.0
    assert reads.observe("ab", "h", *at(0), 40.0, runs.read(at(0)[0])) is None
    assert reads.waiting("a") == 20.0  # "ab" is another object, whatever its name starts with
    clock.now = 30.0
    assert reads.observe("a", "h", *at(0), 30.0, runs.read(at(0)[0])) is not None
    assert reads.waiting("a") is None
    assert reads.waiting("ab") == 20.0
    reads.forget("ab")
    assert reads.waiting("ab") is None


@pytest.mark.parametrize(
    ("answer", "fails", "expected"),
    [
        # A failure of the old window's read is Prometheus's now: said for the current window.
        ("Prometheus at h is unreachable", False, "Prometheus at h is unreachable"),
        (None, True, "metrics read failed: RuntimeError: connection reset"),
        # An answer for the old window is not the current one's: the current window is read.
        (None, False, None),
    ],
)
def test_a_read_that_ends_after_its_window_moved(
    clocked: tuple[MetricsReads, Clock, Reads], answer: str | None, fails: bool, expected: str | None
) -> None:
    reads, clock, runs = clocked
    assert reads.observe("a", "h", *at(0), 30.0, runs.read(at(0)[0], answer, fails)) is None
    clock.now = 20.0
    runs.release(0)
    result = reads.observe("a", "h", *at(1), 30.0, runs.read(at(1)[0]))
    if expected is not None:
        assert result == rollout.Observation(*at(1), unavailable=expected)
        assert runs.started == [at(0)[0]]
        return
    assert result is None
    runs.release(1)
    assert reads.observe("a", "h", *at(1), 30.0, runs.read(at(1)[0])) == rollout.Observation(
        *at(1), window=WINDOW
    )
    assert runs.started == [at(0)[0], at(1)[0]]


def test_each_object_has_one_read_at_a_time_and_others_on_the_host_are_not_held(
    clocked: tuple[MetricsReads, Clock, Reads],
) -> None:
    reads, clock, runs = clocked
    for minutes in range(5):
        clock.now = minutes * 60.0
        reads.observe("a", "h", *at(minutes), 30.0, runs.read(at(minutes)[0]))
    wait_started(runs, 1)
    time.sleep(0.1)
    assert runs.started == [at(0)[0]]
    # The host's second worker is free for another object.
    assert reads.observe("b", "h", *at(4), 30.0, runs.read(at(4)[0])) is None
    wait_started(runs, 2)
    runs.release(1)
    assert reads.observe("b", "h", *at(4), 30.0, runs.read(at(4)[0])) == rollout.Observation(
        *at(4), window=WINDOW
    )


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
        assert reads.waiting("ns/a#preflight") is None, "the object's read is not its preflight's"
        preflight = Batched("g", "a#preflight", _recording_run(calls))
        assert reads.observe("ns/a#preflight", "h", START, END, 30.0, pytest.fail, preflight) is None
        both = reads.waiting("ns/a")
        assert both is not None and both <= 30.0, "the nearest deadline of the object's reads"
        deadline = time.monotonic() + 10
        while len(woken) < 2 and time.monotonic() < deadline:
            ready.wait(0.1)
        assert sorted(woken) == ["ns/a", "ns/a#preflight"]
        assert reads.waiting("ns/a") is None
        assert reads.waiting("ns/a#preflight") is None
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


def test_reads_joining_while_their_group_runs_are_read_together_right_after_it() -> None:
    calls: list[list[str]] = []
    release = threading.Event()
    first_started = threading.Event()

    def run(members: Any) -> list[rollout.Observation]:
        calls.append(list(members))
        if len(calls) == 1:
            first_started.set()
            assert release.wait(10), "the test never released the first batch"
        return [rollout.Observation(START, END, unavailable=f"read {m}") for m in members]

    reads = MetricsReads(quick_wait=0.0, gather=0.05, batching=True)
    try:
        assert reads.observe("a", "h", START, END, 60.0, pytest.fail, Batched("g", "a", run)) is None
        assert first_started.wait(10)
        # Far longer than `gather` passes while the first batch runs: the later reads still wait for it.
        later = [f"b{i}" for i in range(4)]
        for key in later:
            assert reads.observe(key, "h", START, END, 60.0, pytest.fail, Batched("g", key, run)) is None
            time.sleep(0.1)
        assert calls == [["a"]], "a second batch of the group started while the first ran"
        release.set()
        results = {key: _wait(reads, key, Batched("g", key, run)) for key in later}
    finally:
        release.set()
        reads.close()
    assert calls == [["a"], later]
    assert {key: r.unavailable for key, r in results.items()} == {key: f"read {key}" for key in later}


def test_a_large_batch_answers_slice_by_slice_and_skips_members_given_up_meanwhile() -> None:
    calls: list[list[str]] = []
    futures: list[Future[rollout.Observation]] = [Future() for _ in range(5)]
    members = ["a", "b", "c", "d", "e"]

    def run(chunk: Any) -> list[rollout.Observation]:
        calls.append(list(chunk))
        if len(calls) == 1:
            # The first slice is answered before the next is read; "d" gives up meanwhile.
            assert [f.done() for f in futures[:2]] == [False, False]
            assert futures[3].cancel() is True
        return [rollout.Observation(START, END, unavailable=f"read {m}") for m in chunk]

    _run_batch(_Batch(run, members, futures), slice_members=2)
    assert calls == [["a", "b"], ["c"], ["e"]]
    assert [f.result(0).unavailable for i, f in enumerate(futures) if i != 3] == [
        "read a",
        "read b",
        "read c",
        "read e",
    ]


@pytest.mark.parametrize(("reusable", "answered"), [(True, True), (False, False)])
def test_an_answer_for_an_earlier_window_is_used_only_where_reuse_allows(
    reusable: bool, answered: bool
) -> None:
    reads = MetricsReads(quick_wait=0.0)
    asked: list[datetime] = []

    def reuse(started: datetime, result: rollout.Observation) -> bool:
        asked.append(started)
        return reusable

    try:
        first = rollout.Observation(START, END)  # a window answered without trouble
        # Its answer arrives after the object's next window began.
        slow = threading.Event()
        assert reads.observe("b", "h", START, END, 60.0, lambda: (slow.wait(10), first)[1]) is None
        later = START + timedelta(seconds=15)
        slow.set()
        deadline = time.monotonic() + 10
        while not reads._in_flight["b"].future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        fresh = rollout.Observation(later, END + timedelta(seconds=15), unavailable="asked again")
        result = reads.observe("b", "h", later, END, 60.0, lambda: fresh, reuse=reuse)
    finally:
        reads.close()
    assert asked and asked[0] == START
    assert (result == first) is answered
    if not answered:
        assert result is None or result == fresh
