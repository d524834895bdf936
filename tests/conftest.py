"""The order tests start in, for unit and e2e tests alike.

`make test` runs pytest-xdist workers, each with a cluster of its own, that take one test at a time
(`--maxschedchunk=1`) in collection order. The slow production-condition scenarios (marked `slow`) go
first, so that they run beside the rest rather than after it; then the other e2e tests; the unit tests,
short, fill the gaps at the end. Within each group the order is pytest's own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import summary

E2E_DIR = Path(__file__).resolve().parent / "e2e"


def _start_rank(item: pytest.Item) -> int:
    if item.get_closest_marker("slow"):
        return 0
    return 1 if E2E_DIR in item.path.parents else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_start_rank)


_WORKER_OUTPUT_KEY = "llmrollout_e2e_summary"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a pytest-xdist worker: hand the summary's lines to the controller, which prints them."""
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        facts = {f"{key} ({worker})": value for key, value in summary.facts.items()}
        worker_output[_WORKER_OUTPUT_KEY] = json.dumps({"facts": facts, "measured": summary.measured})


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    lines = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT_KEY)
    if lines:
        worker_summary = json.loads(lines)
        summary.facts.update(worker_summary["facts"])
        summary.measured.extend(worker_summary["measured"])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for key, value in summary.facts.items():
        terminalreporter.write_line(f"e2e {key}: {value}")
    for line in summary.measured:
        terminalreporter.write_line(f"e2e measured: {line}")
