"""Whether every LLMDeployment is still being reconciled: what the liveness probe reports.

A reconcile that keeps failing (status writes refused, the apiserver unreachable) must not look
healthy: an object whose last successful reconcile is older than STALE_INTERVALS of its own
interval makes the probe fail, so Kubernetes restarts an operator that cannot do its job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

STALE_INTERVALS: Final = 3


@dataclass
class _Entry:
    since: float  # last success, or first sight while none has succeeded yet
    interval: float
    succeeded: bool = False


class Health:
    """Last successful reconcile per object key; thread-safe (handlers run in a thread pool)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def attempted(self, key: str, interval: float) -> None:
        """An object is being reconciled; the clock for it starts at its first attempt."""
        with self._lock:
            entry = self._entries.setdefault(key, _Entry(since=self._clock(), interval=interval))
            entry.interval = interval

    def succeeded(self, key: str, interval: float, next_due_in: float = 0.0) -> None:
        """A reconcile succeeded, and the object needs its next one in `next_due_in` seconds: it
        is stale only once it has gone STALE_INTERVALS past that without another success."""
        with self._lock:
            since = self._clock() + max(0.0, next_due_in)
            self._entries[key] = _Entry(since=since, interval=interval, succeeded=True)

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def stale(self) -> dict[str, float]:
        """Key -> seconds since its last successful reconcile was due, for every object behind by more
        than STALE_INTERVALS of its interval. An idle object (nothing due) is forgotten, not stale."""
        now = self._clock()
        with self._lock:
            return {
                key: now - entry.since
                for key, entry in sorted(self._entries.items())
                if now - entry.since > STALE_INTERVALS * entry.interval
            }

    def describe_stale(self) -> str:
        """One line naming the stale objects (at most five), or "" when all are current."""
        stale = self.stale()
        named = [f"{key} ({age:.0f}s)" for key, age in list(stale.items())[:5]]
        more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
        return (
            f"no successful reconcile within {STALE_INTERVALS} intervals: {', '.join(named)}{more}"
            if stale
            else ""
        )
