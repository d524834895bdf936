"""The online evaluator on the real path: a real `llmrollout judge` process and its judge model.

`JudgeProcess` runs `llmrollout judge --scorer llmJudge` as a subprocess of the test run, on a loopback
port of its own, with a stand-in judge model (an OpenAI-compatible server on 127.0.0.1) whose verdicts
follow the scripted answer quality: the simulated model servers (with `eval_metrics=False`) end every
answer with `[sim quality=0.873 feedback=...]`, and the stand-in replies `{"score": 0.873}` for it. An
answer without a marker gets prose without a score, which the judge records as unparseable (never a
pass). The real Prometheus scrapes the process's /metrics like any target; the traffic generator
posts a sample of its exchanges and the users' thumbs to it (traffic.JudgeFeed).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import httpx

from bench.judge.standin import OpenAIStandIn, last_user
from tests.e2e.harness.modelserver import scripted

REPO = Path(__file__).resolve().parents[3]
PASS_THRESHOLD = 0.7  # the model servers' Behaviour.pass_threshold, so verdicts mean the same
_LISTENING = re.compile(r"llmrollout judge: \S+ on (http://[\d.]+:\d+)")


def grade(body: dict[str, Any]) -> str:
    """The stand-in judge model: the score the graded answer's marker carries."""
    prompt = last_user(body)
    answer = prompt.split("Answer to grade:\n", 1)[-1]
    found = scripted(answer)
    if found is None:
        return "I cannot tell how good this answer is."
    return json.dumps({"score": found[0], "reason": "as scripted"})


class JudgeProcess:
    """One `llmrollout judge` accepting `variants`, scoring `sample_rate` of what it receives."""

    def __init__(
        self,
        log_path: Path,
        variants: Sequence[str],
        *,
        sample_rate: float = 0.5,
        workers: int = 4,
        queue_size: int = 1000,
    ) -> None:
        self.log_path = log_path
        self.variants = tuple(variants)
        self.sample_rate = sample_rate
        self.workers = workers
        self.queue_size = queue_size
        self.model = OpenAIStandIn(chat=grade, record=False)
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._model_running = False

    @property
    def address(self) -> str:
        """host:port, as a Prometheus target."""
        return self.url.removeprefix("http://")

    def start(self, timeout: float = 30.0) -> Self:
        self.model.__enter__()
        self._model_running = True
        command = [
            *(sys.executable, "-m", "llmrollout.cli", "judge", "--listen", "127.0.0.1:0"),
            *("--scorer", "llmJudge", "--judge-endpoint", self.model.base_url, "--judge-model", "sim-judge"),
            *("--pass-threshold", str(PASS_THRESHOLD), "--sample-rate", str(self.sample_rate)),
            *("--workers", str(self.workers), "--queue-size", str(self.queue_size), "--timeout", "10"),
            *(arg for variant in self.variants for arg in ("--variant", variant)),
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not (found := _LISTENING.search(self.log())):
            if self.process.poll() is not None or time.monotonic() >= deadline:
                self.stop()
                raise AssertionError(f"llmrollout judge did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        self.url = found[1]
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self._model_running:
            self._model_running = False
            self.model.__exit__()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics_text(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def sample(self, name: str, **labels: str) -> float:
        """A value from the judge's /metrics, summed over labels not given (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(self.metrics_text()):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total
