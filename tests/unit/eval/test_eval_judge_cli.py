"""`llmrollout judge` as a process: it serves, scores, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from llmrollout.cli import main

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_judge_process_scores_and_stops_on_sigterm() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
    args = ["judge", "--listen", f"127.0.0.1:{port}", "--scorer", "contains", "--sample-rate", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "llmrollout.cli", *args], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/healthz")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "judge did not start"
                time.sleep(0.1)
        body = {"variant": "v1", "prompt": "q", "response": "the answer is 42", "reference": "42"}
        assert httpx.post(url + "/v1/exchanges", json=body).status_code == 202
        while (
            'llm_eval_results_total{result="pass",variant="v1"} 1.0' not in httpx.get(url + "/metrics").text
        ):
            assert time.monotonic() < deadline, "exchange not scored"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert f"contains on http://127.0.0.1:{port}" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nowhere", "--scorer", "contains"], "is not HOST:PORT"),
        (["--scorer", "contains", "--sample-rate", "2"], "--sample-rate must be in [0, 1]"),
        (["--scorer", "llmJudge"], "needs a judge endpoint"),
    ],
)
def test_judge_misconfiguration_exits_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["judge", *args]) == 2
    assert message in capsys.readouterr().err
