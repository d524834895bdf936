import threading
import time
from collections.abc import Callable

from llmrollout.handlers.gates import GoldenSetRuns
from llmrollout.rollout import GateReport


def _wait(runs: GoldenSetRuns, attempt: str, run: Callable[..., dict[str, object]]) -> GateReport:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        report = runs.poll("ns/bot", "v2", attempt, run)
        if report.decision is not None or report.error is not None:
            return report
        time.sleep(0.01)
    raise AssertionError("the gate did not finish")


def test_a_decision_is_reported_until_the_attempt_changes_and_a_run_is_not_repeated() -> None:
    calls: list[int] = []

    def run(progress: Callable[[int, int], None]) -> dict[str, object]:
        calls.append(1)
        progress(1, 1)
        return {"reason": "GoldenSetFailed"}

    runs = GoldenSetRuns()
    try:
        first = _wait(runs, "t0#0", run)
        again = runs.poll("ns/bot", "v2", "t0#0", run)  # e.g. the status write of the decision failed
        assert first.decision == again.decision == {"reason": "GoldenSetFailed"}
        assert len(calls) == 1
        _wait(runs, "t0#1", run)  # the state machine asked for another attempt
        assert len(calls) == 2
    finally:
        runs.close()


def test_progress_while_running_and_an_error_is_not_a_verdict() -> None:
    release = threading.Event()

    def slow(progress: Callable[[int, int], None]) -> dict[str, object]:
        progress(3, 10)
        release.wait(5)
        raise RuntimeError("judge unreachable")

    runs = GoldenSetRuns()
    try:
        deadline = time.monotonic() + 5
        report = runs.poll("ns/bot", "v2", "t0#0", slow)
        while report.done != 3 and time.monotonic() < deadline:
            time.sleep(0.01)
            report = runs.poll("ns/bot", "v2", "t0#0", slow)
        assert (report.done, report.total, report.decision) == (3, 10, None)
        release.set()
        failed = _wait(runs, "t0#0", slow)
        assert failed.decision is None and failed.error == "RuntimeError: judge unreachable"
    finally:
        runs.close()
