"""The operator's /metrics endpoint serves its own registry; bad addresses are named."""

from __future__ import annotations

import logging
import socket
import urllib.request

import pytest

from llmrollout.handlers import telemetry


def test_metrics_are_served_over_http() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    telemetry.serve(f"127.0.0.1:{port}")
    telemetry.RECONCILES.labels("success").inc()
    telemetry.DECISIONS.labels("StepAdvanced").inc()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    assert 'llmrollout_reconciles_total{result="success"}' in text
    assert 'llmrollout_decisions_total{kind="StepAdvanced"}' in text
    assert "llmrollout_metrics_read_seconds_bucket" in text
    assert "python_gc_objects_collected_total" not in text  # our registry only


@pytest.mark.parametrize("address", ["8081", "localhost", "0.0.0.0:http", ""])
def test_a_bad_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        telemetry.serve(address)


def test_chatty_loggers_are_quieted() -> None:
    telemetry.quiet_third_party_logs()
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("kopf.objects").getEffectiveLevel() == logging.WARNING
