"""Wakes each LLMDeployment when it next needs a reconcile, instead of polling every object each second.

One thread keeps a heap of (due time, object key); reconciles run on a bounded worker pool, so a slow
object holds one worker and never delays the others. An object is never reconciled twice at once: a
wake that arrives while it runs is kept and honoured when the run ends. The run callback returns when
the object next needs a reconcile (None: idle until something wakes it), so an idle object costs
nothing between events. No Kopf here: the handlers feed it watch events and give it the reconcile.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

DEFAULT_WORKERS: Final = 8
# How often the loop asks whether this process may act (leader election): a standby's due objects
# wait, and a process that regains its Lease runs every object once. One cheap call, not per object.
ACTIVE_POLL_SECONDS: Final = 0.5
logger = logging.getLogger(__name__)

# A reconcile of `key`; returns when it next needs one (epoch seconds), or None when idle.
Run = Callable[[str], float | None]


@dataclass
class _State:
    due: float | None = None  # when the next run is due; None: idle
    running: bool = False
    again: float | None = None  # a wake that arrived while running


class Scheduler:
    def __init__(
        self,
        run: Run,
        workers: int = DEFAULT_WORKERS,
        active: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
        min_delay: float = 0.0,
    ) -> None:
        """`active` says whether this process may reconcile now (leader election); `min_delay` is
        the shortest wait between two runs of one object that a run asked for itself (so a window
        that is due but whose read is still running is re-polled, not spun on)."""
        self._run = run
        self._active = active
        self._clock = clock
        self._min_delay = min_delay
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="reconcile")
        self._cond = threading.Condition()
        self._states: dict[str, _State] = {}
        self._heap: list[tuple[float, str]] = []
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._was_active = False

    # --- what the handlers call ----------------------------------------------------------------

    def wake(self, key: str, at: float | None = None) -> None:
        """`key` needs a reconcile at `at` (default: now), or earlier if it was due earlier."""
        when = self._clock() if at is None else at
        with self._cond:
            state = self._states.setdefault(key, _State())
            if state.running:
                state.again = when if state.again is None else min(state.again, when)
                return
            if state.due is None or when < state.due:
                state.due = when
                heapq.heappush(self._heap, (when, key))
                self._cond.notify()

    def forget(self, key: str) -> None:
        """`key` is gone (deleted, or no longer this process's): never run it again."""
        with self._cond:
            self._states.pop(key, None)

    def known(self) -> int:
        with self._cond:
            return len(self._states)

    def due(self) -> dict[str, float | None]:
        """Key -> next due time (None: idle), for every object known."""
        with self._cond:
            return {key: state.due for key, state in self._states.items()}

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- the loop --------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while True:
            active = self._active()
            with self._cond:
                if self._stopped:
                    return
                if active and not self._was_active:
                    self._wake_all_locked()  # leading again: nothing may have moved while we were not
                self._was_active = active
                if not active:
                    self._cond.wait(ACTIVE_POLL_SECONDS)
                    continue
                ready = self._pop_due_locked()
                if not ready:
                    wait = self._wait_locked()
                    self._cond.wait(ACTIVE_POLL_SECONDS if wait is None else min(wait, ACTIVE_POLL_SECONDS))
                    continue
            for key in ready:
                self._pool.submit(self._run_one, key)

    def _wake_all_locked(self) -> None:
        now = self._clock()
        for key, state in self._states.items():
            if state.running:
                state.again = now
            else:
                state.due = now
                heapq.heappush(self._heap, (now, key))

    def _pop_due_locked(self) -> list[str]:
        now = self._clock()
        ready = []
        while self._heap and self._heap[0][0] <= now:
            when, key = heapq.heappop(self._heap)
            state = self._states.get(key)
            # A heap entry is current only if the object still wants to run then (a wake may have
            # moved it earlier, a run may have rescheduled it): stale entries are dropped here.
            if state is None or state.running or state.due != when:
                continue
            state.due = None
            state.running = True
            ready.append(key)
        return ready

    def _wait_locked(self) -> float | None:
        while self._heap:
            when, key = self._heap[0]
            state = self._states.get(key)
            if state is None or state.running or state.due != when:
                heapq.heappop(self._heap)
                continue
            return max(0.0, when - self._clock())
        return None

    def _run_one(self, key: str) -> None:
        started = self._clock()
        try:
            following = self._run(key)
        except Exception:  # a bug in a reconcile: the object is retried, never dropped
            logger.exception("reconcile of %s failed unexpectedly; retrying", key)
            following = started + 5.0
        if following is not None:
            following = max(following, started + self._min_delay)
        with self._cond:
            state = self._states.get(key)
            if state is None:
                return  # forgotten while it ran
            state.running = False
            candidates = [t for t in (following, state.again) if t is not None]
            state.again = None
            if candidates:
                state.due = min(candidates)
                heapq.heappush(self._heap, (state.due, key))
                self._cond.notify()
