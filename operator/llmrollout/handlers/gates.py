"""Golden-set gates off the reconcile thread: a run takes minutes (every item against candidate and
stable, then the judge), so it runs in a small pool; each tick reports its progress, then its
decision, to the state machine, which records it in status. A restarted operator starts the run
again (status says Evaluating; a gate is cheap next to a bad rollout)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

from llmrollout import rollout
from llmrollout.api.status import truncate

WORKERS: Final = 2

Run = Callable[[Callable[[int, int], None]], dict[str, object]]


@dataclass
class _Gate:
    candidate: str
    attempt: str
    future: Future[dict[str, object]]
    progress: list[int] = field(default_factory=lambda: [0, 0])


class GoldenSetRuns:
    def __init__(self, workers: int = WORKERS) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="golden-set")
        self._lock = threading.Lock()
        self._runs: dict[str, _Gate] = {}

    def poll(self, key: str, candidate: str, attempt: str, run: Run) -> rollout.GateReport:
        """The gate of `candidate` for object `key`: started if this `attempt` (the state machine's
        count of runs) has no run yet, else its progress or its outcome. An outcome is reported at
        every poll until the attempt changes, so a status write that failed loses nothing."""
        with self._lock:
            gate = self._runs.get(key)
            if gate is not None and (gate.candidate, gate.attempt) != (candidate, attempt):
                gate.future.cancel()
                gate = None
            if gate is None:
                progress = [0, 0]

                def report(done: int, total: int) -> None:
                    progress[:] = [done, total]

                gate = _Gate(candidate, attempt, self._pool.submit(run, report), progress)
                self._runs[key] = gate
        if not gate.future.done():
            return rollout.GateReport(candidate, done=gate.progress[0], total=gate.progress[1])
        try:
            return rollout.GateReport(candidate, decision=gate.future.result())
        except Exception as error:  # a bad set, an unknown scorer, an outage: not a verdict
            return rollout.GateReport(candidate, error=truncate(f"{type(error).__name__}: {error}"))

    def forget(self, key: str) -> None:
        with self._lock:
            gate = self._runs.pop(key, None)
        if gate is not None:
            gate.future.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
