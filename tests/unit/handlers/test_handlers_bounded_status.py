"""A Prometheus that answers with huge error texts cannot grow the status: everything that enters
status from outside is cut, every message and list is capped (issue: 200 KB error text, 15 looks)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from llmrollout import rollout
from llmrollout.api import LLMDeploymentSpec, LLMDeploymentStatus
from llmrollout.api.status import MAX_EXTERNAL_TEXT, MAX_HISTORY, MAX_MESSAGE
from llmrollout.handlers import reconciler

HUGE = 200_000


class _Hostile(BaseHTTPRequestHandler):
    """Answers every query like a failing Prometheus whose error text is 200 KB."""

    status_code = 503

    def do_GET(self) -> None:
        body = json.dumps({"status": "error", "errorType": "unavailable", "error": "E" * HUGE}).encode()
        self.send_response(self.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return


class _Rejecting(_Hostile):
    status_code = 400  # the query's fault: lands in Window.problems, not as unavailable


@pytest.fixture(params=[_Hostile, _Rejecting], ids=["unavailable", "query-rejected"])
def prometheus(request: pytest.FixtureRequest) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def spec(address: str) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate(
        {
            "variants": [
                {"name": "v1", "model": "m1", "backendRef": {"name": "bot-v1", "port": 8000}},
                {"name": "v2", "model": "m2", "backendRef": {"name": "bot-v2", "port": 8000}},
            ],
            "stable": "v1",
            "candidate": "v2",
            "traffic": {"router": "none"},
            "strategy": {"interval": "10s"},
            "metrics": {"prometheus": {"address": address}},
            "slos": {
                "errorRate": {"max": 0.05},
                "custom": [{"name": "refusals", "query": 'sum(x{variant="{{variant}}"})', "max": 0.1}],
            },
            "analysis": {"method": "threshold", "inconclusiveLimit": 1000},
        }
    )


def test_a_200kb_error_text_yields_a_status_under_64kib(prometheus: str) -> None:
    parsed = spec(prometheus)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    status = LLMDeploymentStatus()
    events: list[rollout.Event] = []
    with httpx.Client(timeout=5.0) as http:
        clients = reconciler.Clients(None, http)
        status = rollout.reconcile(parsed, status, 1, now).status
        for _ in range(15):
            now += parsed.strategy.interval + timedelta(seconds=1)
            observation = reconciler._observe(clients, parsed, status, "team-a", now)
            assert observation is not None
            outcome = rollout.reconcile(parsed, status, 1, now, observation)
            status = outcome.status
            events.extend(outcome.events)
    written = json.dumps(reconciler.status_body(status))
    assert len(written.encode()) < 64 * 1024, len(written)
    assert len(status.history) <= MAX_HISTORY
    for condition in status.conditions:
        assert len(condition.message) <= MAX_MESSAGE
    # Prometheus' text reaches status and Events only as a 256-character excerpt.
    assert "E" * MAX_EXTERNAL_TEXT not in written
    assert events and all("E" * MAX_EXTERNAL_TEXT not in e.message for e in events)
