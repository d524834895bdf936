"""Metrics reads off the reconcile thread: a small pool per Prometheus host, a deadline per window.

A reconcile must not wait on Prometheus: a slow or hostile server would hold the thread that every
other LLMDeployment's reconcile needs. A window's read runs in the pool of its Prometheus host
(so one slow host only queues its own reads); the reconcile waits briefly for it, and otherwise
decides without it and picks the result up on a later tick. A read that outlives its deadline is
reported as unavailable (the window is then inconclusive, never a promotion); its thread is left
to the HTTP client's own timeouts, and its object asks that Prometheus again only once it has ended
(a read still queued then is not run at all).

Reads that can share queries (see metrics/batch.py) are gathered for a moment: every read of one group
on one Prometheus that is asked for within `gather` seconds joins one batch, which runs as one job in
the host's pool and hands each reconcile its own observation. LLMROLLOUT_BATCH_READS=0 reads every
window alone (for comparing both, in tests and bench/scale).

While a group's batch runs, reads of that group wait for it to end and then run together as the
next batch (group commit): a fleet whose reconciles trickle in over several seconds is read in a few
large batches, not in one small batch per `gather`, so the queries a boundary costs stay bounded by
the groups and the time a batch takes, not by how fast the reconciles run.

With a scheduler (`on_ready` set), a reconcile that joins a batch does not wait for it at all: a
reconcile waiting on its batch holds a worker, so a fleet woken at one window boundary would join in
batches of only as many members as there are workers (and wait for them in turn). It returns at once
and the batch's end wakes it (`on_ready(key)`), so every reconcile of one boundary joins the first
batches.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from llmrollout import rollout
from llmrollout.api.status import truncate
from llmrollout.metrics.batch import MAX_MEMBERS_PER_QUERY

WORKERS_PER_HOST: Final = 2
MAX_HOSTS: Final = 32  # beyond this, hosts share one pool: a spec cannot make us start threads at will
QUICK_WAIT_SECONDS: Final = 2.0
# Long enough for the reconciles woken at one window boundary to join one batch; short against any
# look interval (1s at least).
GATHER_SECONDS: Final = 0.5
BATCH_READS_ENV: Final = "LLMROLLOUT_BATCH_READS"

Read = Callable[[], rollout.Observation]
# Whether an answer for the window that started at the given time also answers the current one.
Reuse = Callable[[datetime, rollout.Observation], bool]


def _reusable(started: datetime, result: rollout.Observation, reuse: Reuse | None) -> bool:
    return reuse is not None and result.unavailable is None and reuse(started, result)


def batching_from_env() -> bool:
    return os.environ.get(BATCH_READS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Batched:
    """How one window read can join others: members of one `group` are read together by `run`,
    which returns one observation per member, in order."""

    group: Hashable
    member: Any
    run: Callable[[Sequence[Any]], Sequence[rollout.Observation]]


@dataclass
class _Batch:
    run: Callable[[Sequence[Any]], Sequence[rollout.Observation]]
    members: list[Any] = field(default_factory=list)
    futures: list[Future[rollout.Observation]] = field(default_factory=list)


@dataclass
class _InFlight:
    start: datetime
    future: Future[rollout.Observation]
    submitted: float
    deadline: float
    # Set once the read is reported past its deadline: what each window is told until it ends.
    late: str | None = None


class MetricsReads:
    def __init__(
        self,
        workers_per_host: int = WORKERS_PER_HOST,
        quick_wait: float = QUICK_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        batching: bool | None = None,
        gather: float = GATHER_SECONDS,
        slice_members: int = MAX_MEMBERS_PER_QUERY,
    ) -> None:
        self._workers = workers_per_host
        self._quick_wait = quick_wait
        self._clock = clock
        self.batching = batching_from_env() if batching is None else batching
        self._gather = gather
        self._slice_members = slice_members
        self._lock = threading.Lock()
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._in_flight: dict[str, _InFlight] = {}
        # The keys in _in_flight per object (a key and its suffixed ones, `key#preflight`): `waiting`
        # is asked on every reconcile, and a scan of every read in flight under the lock cost O(N).
        self._keys_of: dict[str, set[str]] = {}
        self._batches: dict[tuple[str, Hashable], _Batch] = {}
        # (host, group) whose batch is running: that group's next batch is dispatched when it ends.
        self._running: set[tuple[str, Hashable]] = set()
        self._timers: set[threading.Timer] = set()
        # Called with the key of a batched read once its observation is ready (the scheduler's wake).
        self.on_ready: Callable[[str], None] | None = None

    def _pool(self, host: str) -> ThreadPoolExecutor:
        with self._lock:
            if host not in self._pools and len(self._pools) >= MAX_HOSTS:
                host = "(shared)"
            if host not in self._pools:
                self._pools[host] = ThreadPoolExecutor(
                    self._workers, thread_name_prefix=f"metrics-{host}"[:40]
                )
            return self._pools[host]

    def observe(
        self,
        key: str,
        host: str,
        start: datetime,
        end: datetime,
        deadline: float,
        read: Read,
        batched: Batched | None = None,
        reuse: Reuse | None = None,
    ) -> rollout.Observation | None:
        """The observation of the window starting at `start` for object `key`, or None while its
        read is still running (within `deadline` seconds of being started). With `batched` (and
        batching on), the read joins its group's next batch instead of running alone. `reuse` says
        whether an answer for an earlier window (started when given) also answers this one: without
        it, a window whose answer always arrives after the next window began would never be answered.

        An object has at most one read at a time. A read still running when its window moves on is
        kept, not restarted: its deadline runs from when it was started, so a hung Prometheus is named
        one deadline after it was first asked, wherever the windows' boundaries fall, and its failure
        is the current window's. (One still queued for a window gone is replaced by the new window's,
        which keeps the first ask's deadline.) A read reported late stays the object's until it ends
        (the HTTP client's own deadline ends it), and each window asked meanwhile gets the same words;
        only then is Prometheus asked again, so a hung server does not collect one stuck read per
        window."""
        joined = batched is not None and self.batching
        flight = self._flight(key, host, start, deadline, read, batched if joined else None, reuse)
        if flight.late is not None:
            return rollout.Observation(start, end, unavailable=flight.late)
        # With a scheduler, the batch's end wakes this object: no worker waits for it.
        quick_wait = 0.0 if joined and self.on_ready is not None else self._quick_wait
        waited = self._clock() - flight.submitted
        try:
            result = flight.future.result(timeout=max(0.0, min(quick_wait, deadline - waited)))
        except Exception as error:  # a provider's bug: inconclusive, never a crashed reconcile
            if isinstance(error, FutureTimeoutError):
                return self._late(host, flight, start, end, deadline)
            self._drop(key, flight)
            message = truncate(f"metrics read failed: {type(error).__name__}: {error}")
            return rollout.Observation(start, end, unavailable=message)
        self._drop(key, flight)
        if flight.start == start or _reusable(flight.start, result, reuse):
            return result
        if result.unavailable is not None:
            return rollout.Observation(start, end, unavailable=result.unavailable)
        return None  # an answer for a window that has moved on (it ended meanwhile): read the new one

    def _flight(
        self,
        key: str,
        host: str,
        start: datetime,
        deadline: float,
        read: Read,
        batched: Batched | None,
        reuse: Reuse | None = None,
    ) -> _InFlight:
        """The object's read: the one running (whichever window it was started for), else a new one."""
        submitted = self._clock()
        with self._lock:
            flight = self._in_flight.get(key)
            if (
                flight is not None
                and flight.start != start
                and flight.late is None
                and flight.future.cancel()
            ):
                # Still queued for a window gone: its place goes to this window's read, and the
                # deadline still counts from the first ask.
                submitted = flight.submitted
                self._remove(key)
                flight = None
            elif flight is not None and flight.future.done():
                answered = (
                    not flight.future.cancelled()
                    and flight.future.exception() is None
                    and flight.future.result().unavailable is None
                )
                # Ended after being reported late (its failure was said), or answered a window that
                # has moved on: neither is this window's.
                if flight.late is not None or (
                    flight.start != start
                    and answered
                    and not _reusable(flight.start, flight.future.result(), reuse)
                ):
                    self._remove(key)
                    flight = None
        if flight is not None:
            return flight
        future = self._join(host, batched) if batched is not None else self._pool(host).submit(read)
        flight = _InFlight(start, future, submitted, deadline)
        with self._lock:
            self._in_flight[key] = flight
            self._keys_of.setdefault(_object_of(key), set()).add(key)
        ready = self.on_ready
        if batched is not None and ready is not None:
            future.add_done_callback(lambda _: ready(key))
        return flight

    def _drop(self, key: str, flight: _InFlight) -> None:
        with self._lock:
            if self._in_flight.get(key) is flight:
                self._remove(key)

    def _remove(self, key: str) -> None:
        """Drops the read of `key`; the caller holds the lock."""
        self._in_flight.pop(key, None)
        keys = self._keys_of.get(_object_of(key))
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys_of[_object_of(key)]

    def _late(
        self, host: str, flight: _InFlight, start: datetime, end: datetime, deadline: float
    ) -> rollout.Observation | None:
        if self._clock() - flight.submitted < deadline:
            return None
        # A read still queued is not run (reads that outlive their deadline while queued would
        # otherwise keep a saturated host's queue full of stale work); it has ended then, and the
        # next tick asks again.
        flight.future.cancel()
        flight.late = (
            f"Prometheus at {truncate(host, 253)} did not answer within {deadline:.0f}s"
            " (the window's deadline)"
        )
        return rollout.Observation(start, end, unavailable=flight.late)

    def _join(self, host: str, batched: Batched) -> Future[rollout.Observation]:
        future: Future[rollout.Observation] = Future()
        with self._lock:
            batch = self._batches.get((host, batched.group))
            if batch is None:
                batch = self._batches[(host, batched.group)] = _Batch(batched.run)
                if (host, batched.group) not in self._running:
                    timer = threading.Timer(self._gather, self._dispatch, (host, batched.group))
                    timer.daemon = True
                    self._timers.add(timer)
                    timer.start()
            batch.members.append(batched.member)
            batch.futures.append(future)
        return future

    def _dispatch(self, host: str, group: Hashable) -> None:
        """Starts the group's gathered batch, unless one of the group is running (its end does)."""
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive() and t is not threading.current_thread()}
            if (host, group) in self._running:
                return
            batch = self._batches.pop((host, group), None)
            if batch is None:
                return
            self._running.add((host, group))
        try:
            self._pool(host).submit(self._run_then_next, host, group, batch)
        except RuntimeError as error:  # the pool was shut down: the operator is stopping
            with self._lock:
                self._running.discard((host, group))
            for future in batch.futures:
                if not future.done():
                    future.set_exception(error)

    def _run_then_next(self, host: str, group: Hashable, batch: _Batch) -> None:
        try:
            _run_batch(batch, self._slice_members)
        finally:
            with self._lock:
                self._running.discard((host, group))
            self._dispatch(host, group)

    def waiting(self, key: str) -> float | None:
        """Seconds until the deadline of the read of `key` (or of one of its suffixed keys, such as
        `key#preflight`) that is still running, the nearest if several; None when none runs (or
        only one already reported late)."""
        with self._lock:
            keys = self._keys_of.get(_object_of(key), ())
            flights = [self._in_flight[k] for k in keys if k == key or k.startswith(key + "#")]
        now = self._clock()
        # A read reported late was said; nothing waits for it any more.
        running = [f for f in flights if not f.future.done() and f.late is None]
        left = [max(0.0, f.submitted + f.deadline - now) for f in running]
        return min(left, default=None)

    def forget(self, key: str) -> None:
        with self._lock:
            self._remove(key)

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)


def _object_of(key: str) -> str:
    """The object a read's key belongs to (`ns/name#preflight` is ns/name's)."""
    return key.split("#", 1)[0]


def _run_batch(batch: _Batch, slice_members: int = 0) -> None:
    """Runs one batch in slices of `slice_members` (all at once with 0), handing each slice's members
    their observations (or the slice's failure) as soon as it is read. Members whose reads were given
    up (past their deadline, or their window moved on) before their slice's turn are not read.

    Slices keep a large batch live: members of the first slices are answered within their deadline
    even when the whole batch would outlast it (a fleet's series checks all at once, on a slow host)."""
    pairs = list(zip(batch.members, batch.futures, strict=True))
    size = slice_members if slice_members > 0 else max(1, len(pairs))
    for first in range(0, len(pairs), size):
        _run_slice(batch.run, pairs[first : first + size])


def _run_slice(
    run: Callable[[Sequence[Any]], Sequence[rollout.Observation]],
    pairs: Sequence[tuple[Any, Future[rollout.Observation]]],
) -> None:
    live = [(m, f) for m, f in pairs if f.set_running_or_notify_cancel()]
    if not live:
        return
    members = [m for m, _ in live]
    futures = [f for _, f in live]
    try:
        observations = list(run(members))
        if len(observations) != len(members):
            raise RuntimeError(f"a batch of {len(members)} reads gave {len(observations)} observations")
    except Exception as error:  # a provider's bug: each reconcile reports it, none crashes
        for future in futures:
            future.set_exception(error)
        return
    for future, observation in zip(futures, observations, strict=True):
        future.set_result(observation)
