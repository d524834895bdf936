"""Metrics reads off the reconcile thread: a small pool per Prometheus host, a deadline per window.

A reconcile must not wait on Prometheus: a slow or hostile server would hold the thread that every
other LLMDeployment's reconcile needs. A window's read runs in the pool of its Prometheus host
(so one slow host only queues its own reads); the reconcile waits briefly for it, and otherwise
decides without it and picks the result up on a later tick. A read that outlives its deadline is
reported as unavailable (the window is then inconclusive, never a promotion); its thread is left
to the HTTP client's own timeouts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from llmrollout import rollout
from llmrollout.api.status import truncate

WORKERS_PER_HOST: Final = 2
MAX_HOSTS: Final = 32  # beyond this, hosts share one pool: a spec cannot make us start threads at will
QUICK_WAIT_SECONDS: Final = 2.0

Read = Callable[[], rollout.Observation]


@dataclass
class _InFlight:
    start: datetime
    future: Future[rollout.Observation]
    submitted: float


class MetricsReads:
    def __init__(
        self,
        workers_per_host: int = WORKERS_PER_HOST,
        quick_wait: float = QUICK_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._workers = workers_per_host
        self._quick_wait = quick_wait
        self._clock = clock
        self._lock = threading.Lock()
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._in_flight: dict[str, _InFlight] = {}

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
        self, key: str, host: str, start: datetime, end: datetime, deadline: float, read: Read
    ) -> rollout.Observation | None:
        """The observation of the window starting at `start` for object `key`, or None while its
        read is still running (within `deadline` seconds of being started)."""
        with self._lock:
            flight = self._in_flight.get(key)
            if flight is not None and flight.start != start:
                del self._in_flight[key]  # the window moved on (a decision elsewhere): stale
                flight = None
        if flight is None:
            flight = _InFlight(start, self._pool(host).submit(read), self._clock())
            with self._lock:
                self._in_flight[key] = flight
        try:
            result = flight.future.result(timeout=self._quick_wait)
        except Exception as error:  # a provider's bug: inconclusive, never a crashed reconcile
            if isinstance(error, FutureTimeoutError):
                return self._late(key, host, flight, start, end, deadline)
            with self._lock:
                self._in_flight.pop(key, None)
            message = truncate(f"metrics read failed: {type(error).__name__}: {error}")
            return rollout.Observation(start, end, unavailable=message)
        with self._lock:
            self._in_flight.pop(key, None)
        return result

    def _late(
        self, key: str, host: str, flight: _InFlight, start: datetime, end: datetime, deadline: float
    ) -> rollout.Observation | None:
        if self._clock() - flight.submitted < deadline:
            return None
        with self._lock:
            self._in_flight.pop(key, None)
        return rollout.Observation(
            start,
            end,
            unavailable=f"Prometheus at {truncate(host, 253)} did not answer within {deadline:.0f}s"
            " (the window's deadline)",
        )

    def forget(self, key: str) -> None:
        with self._lock:
            self._in_flight.pop(key, None)

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
