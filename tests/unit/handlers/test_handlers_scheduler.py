"""The scheduler with a real thread and worker pool and a stand-in reconcile: each object runs when
woken or when its own run said it is next due, never twice at once, and a slow object holds only its
own worker. Waits are for conditions (generous timeouts), never timed assertions."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from llmrollout.handlers.scheduler import Scheduler

TIMEOUT = 10.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Runs:
    """A stand-in reconcile: counts runs per key and answers with a scripted next-due time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count: Counter[str] = Counter()
        self.running: Counter[str] = Counter()
        self.overlapped = False
        self.next: dict[str, Callable[[], float | None]] = {}
        self.block: dict[str, threading.Event] = {}

    def __call__(self, key: str) -> float | None:
        with self.lock:
            self.running[key] += 1
            self.overlapped |= self.running[key] > 1
        if key in self.block:
            self.block[key].wait(TIMEOUT)
        with self.lock:
            self.count[key] += 1
            self.running[key] -= 1
        return self.next.get(key, lambda: None)()

    def runs(self, key: str) -> int:
        with self.lock:
            return self.count[key]


@pytest.fixture
def runs() -> Runs:
    return Runs()


@pytest.fixture
def scheduler(runs: Runs) -> Iterator[Scheduler]:
    s = Scheduler(runs, workers=4)
    s.start()
    yield s
    s.stop()


def test_a_woken_object_runs_once_and_an_idle_one_never_again(scheduler: Scheduler, runs: Runs) -> None:
    scheduler.wake("a/idle")
    wait_until(lambda: runs.runs("a/idle") == 1, "the first run")
    time.sleep(0.3)
    assert runs.runs("a/idle") == 1 and scheduler.due() == {"a/idle": None}


def test_an_object_runs_again_when_its_run_says_it_is_due(scheduler: Scheduler, runs: Runs) -> None:
    runs.next["a/x"] = lambda: time.time() + 0.05
    scheduler.wake("a/x")
    wait_until(lambda: runs.runs("a/x") >= 3, "three runs")


def test_a_wake_during_a_run_runs_it_again_after_never_alongside(scheduler: Scheduler, runs: Runs) -> None:
    runs.block["a/x"] = threading.Event()
    scheduler.wake("a/x")
    wait_until(lambda: runs.running["a/x"] == 1, "the run to start")
    scheduler.wake("a/x")
    scheduler.wake("a/x")
    runs.block["a/x"].set()
    wait_until(lambda: runs.runs("a/x") == 2, "the second run")
    time.sleep(0.2)
    assert runs.runs("a/x") == 2 and not runs.overlapped


def test_a_slow_object_does_not_delay_the_others(scheduler: Scheduler, runs: Runs) -> None:
    runs.block["a/slow"] = threading.Event()
    scheduler.wake("a/slow")
    wait_until(lambda: runs.running["a/slow"] == 1, "the slow run to start")
    for name in ("b", "c", "d"):
        scheduler.wake(f"a/{name}")
    wait_until(lambda: all(runs.runs(f"a/{n}") == 1 for n in ("b", "c", "d")), "the others' runs")
    assert runs.runs("a/slow") == 0
    runs.block["a/slow"].set()
    wait_until(lambda: runs.runs("a/slow") == 1, "the slow run to end")


def test_a_later_wake_does_not_postpone_an_earlier_one(scheduler: Scheduler, runs: Runs) -> None:
    scheduler.wake("a/x", at=time.time() + 0.1)
    scheduler.wake("a/x", at=time.time() + 3600)
    wait_until(lambda: runs.runs("a/x") == 1, "the earlier wake")


def test_a_failing_run_is_retried_not_dropped(scheduler: Scheduler, runs: Runs) -> None:
    calls = Counter[str]()

    def flaky(key: str) -> float | None:
        calls[key] += 1
        if calls[key] == 1:
            raise RuntimeError("a bug")
        return None

    s = Scheduler(flaky, workers=1, clock=lambda: time.time() + (5.0 if calls["a/x"] else 0.0))
    s.start()
    try:
        s.wake("a/x")
        wait_until(lambda: calls["a/x"] == 2, "the retry")
    finally:
        s.stop()


def test_a_forgotten_object_never_runs(scheduler: Scheduler, runs: Runs) -> None:
    scheduler.wake("a/gone", at=time.time() + 0.2)
    scheduler.forget("a/gone")
    time.sleep(0.4)
    assert runs.runs("a/gone") == 0 and scheduler.known() == 0


def test_nothing_runs_while_inactive_and_everything_known_runs_on_becoming_active(runs: Runs) -> None:
    active = threading.Event()
    s = Scheduler(runs, workers=2, active=active.is_set)
    s.start()
    try:
        s.wake("a/x")
        s.wake("a/y")
        time.sleep(0.3)
        assert runs.runs("a/x") == runs.runs("a/y") == 0
        active.set()
        wait_until(lambda: runs.runs("a/x") == runs.runs("a/y") == 1, "the runs once active")
        # Idle now; losing and regaining the lease runs every object again.
        active.clear()
        time.sleep(0.8)
        active.set()
        wait_until(lambda: runs.runs("a/x") == runs.runs("a/y") == 2, "the runs after regaining")
    finally:
        s.stop()


def test_a_run_asking_for_now_is_repolled_after_the_minimum_delay(runs: Runs) -> None:
    runs.next["a/x"] = time.time
    s = Scheduler(runs, workers=1, min_delay=0.05)
    s.start()
    try:
        s.wake("a/x")
        wait_until(lambda: runs.runs("a/x") >= 3, "the re-polls")
    finally:
        s.stop()
    assert s.alive() is False
