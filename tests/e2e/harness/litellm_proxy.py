"""The real LiteLLM proxy (`litellm --config`) with its `prometheus` callback, in front of model servers.

LiteLLM runs from a venv of its own: litellm[proxy] needs boto3, whose botocore wants
python-dateutil<3, while the operator's kubernetes client (37+) wants >=3. Its pin is the
`litellm-proxy` extra in pyproject.toml; hack/setup.sh installs it into
`$LLMROLLOUT_CACHE/litellm-<hash of the pin>` (`python -m tests.e2e.harness.litellm_proxy venv` prints
the folder), shared by every clone on the machine like the control-plane binaries.

Each variant is one model alias (`model_name`), so LiteLLM's `requested_model` label, the litellm
preset's variant label, tells them apart. Offline: the model cost map is LiteLLM's bundled copy
(`LITELLM_LOCAL_MODEL_COST_MAP`); a master key is required by the proxy since 1.8x; /metrics is opened
without auth (`require_auth_for_metrics_endpoint: false`), as a Prometheus in the cluster scrapes it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[3]
EXTRA = "litellm-proxy"
MASTER_KEY = "sk-llmrollout-e2e-0123456789abcdef0123456789abcdef"
START_TIMEOUT = 180.0  # LiteLLM imports for 10-20 s on an idle machine; far longer on a busy one


def requirements() -> list[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return list(data["project"]["optional-dependencies"][EXTRA])


def venv_dir() -> Path:
    """Where hack/setup.sh installs the pinned proxy (keyed by the pin, so a new pin gets a new venv)."""
    cache = Path(os.environ.get("LLMROLLOUT_CACHE") or Path.home() / ".cache" / "llmrollout")
    key = hashlib.sha256("\n".join(requirements()).encode()).hexdigest()[:12]
    return cache / f"litellm-{key}"


def litellm_binary() -> Path:
    return Path(os.environ.get("LLMROLLOUT_LITELLM") or venv_dir() / "bin" / "litellm")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiteLLMProxy:
    """One proxy serving `models` ({alias: OpenAI-compatible base URL of its model server})."""

    def __init__(self, models: Mapping[str, str], workdir: Path) -> None:
        self.models = dict(models)
        self.workdir = workdir
        self.port = _free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.target}"
        self.headers = {"Authorization": f"Bearer {MASTER_KEY}"}
        self.log_path = workdir / "litellm.log"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> dict[str, object]:
        return {
            "model_list": [
                {
                    "model_name": alias,
                    "litellm_params": {
                        "model": f"openai/{alias}",
                        "api_base": f"{url}/v1",
                        "api_key": "none",
                    },
                }
                for alias, url in self.models.items()
            ],
            "litellm_settings": {
                "callbacks": ["prometheus"],
                "require_auth_for_metrics_endpoint": False,
                # A retried 5xx would reach the client as a success: the test wants what the server did.
                "num_retries": 0,
            },
        }

    def start(self) -> LiteLLMProxy:
        binary = litellm_binary()
        if not binary.exists():
            raise RuntimeError(
                f"no LiteLLM proxy at {binary}: run hack/setup.sh (it installs the {EXTRA} extra of"
                " pyproject.toml there), or set LLMROLLOUT_LITELLM"
            )
        config = self.workdir / "litellm.yaml"
        config.write_text(yaml.safe_dump(self.config()))
        env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_MASTER_KEY": MASTER_KEY,
            "LITELLM_LOG": "ERROR",
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"LiteLLM proxy exited ({self.process.returncode}): {self._log_tail()}")
            try:
                if httpx.get(f"{self.url}/health/liveliness", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"LiteLLM proxy not up within {START_TIMEOUT:.0f}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None


if __name__ == "__main__":  # pragma: no cover - hack/setup.sh asks where to install, and what
    if sys.argv[1:] == ["venv"]:
        print(venv_dir())
    elif sys.argv[1:] == ["requirements"]:
        print("\n".join(requirements()))
    else:
        sys.exit("usage: python -m tests.e2e.harness.litellm_proxy venv|requirements")
