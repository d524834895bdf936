"""The operator under test, run as a real `llmrollout run` process against the test cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.e2e.cluster import REPO, wait_for


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: str,
        log_path: Path,
        extra_args: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
        verbose: bool = True,
        all_namespaces: bool = True,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.extra_env = dict(extra_env or {})
        self.verbose = verbose
        self.all_namespaces = all_namespaces  # False: extra_args name the namespaces
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # A short tick keeps second-scale test intervals responsive; decisions still follow spec intervals.
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "PYTHONUNBUFFERED": "1",
            "LLMROLLOUT_TICK_SECONDS": "0.5",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "llmrollout.cli", "run", "--standalone"),
                *(["--all-namespaces"] if self.all_namespaces else []),
                *(["--verbose"] if self.verbose else []),
                *self.extra_args,
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: "Initial authentication has finished" in self.log() or self._died(), 30, "operator start"
        )
        if self._died():
            raise AssertionError(f"operator exited at start:\n{self.tail()}")

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        time.sleep(0.2)
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])
