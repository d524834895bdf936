"""Access to the cluster the e2e tests run against: the local kwok cluster, or any from KUBECONFIG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from llmrollout.k8s.llmdeployments import StaleObjectError, get_llmdeployment, write_status

REPO = Path(__file__).resolve().parents[2]


def versions() -> dict[str, str]:
    lines = (REPO / "hack/versions.env").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def cache_dir() -> Path:
    return Path(os.environ.get("LLMROLLOUT_CACHE", Path.home() / ".cache/llmrollout"))


def built_kubectl() -> Path:
    return cache_dir() / f"kubernetes-{versions()['KUBE_VERSION']}" / "kubectl"


def built_helm() -> Path:
    return cache_dir() / f"helm-{versions()['HELM_VERSION']}" / "helm"


@dataclass
class Kube:
    kubeconfig: str
    kubectl_path: str
    server_version: str = ""
    started_here: bool = False

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.kubectl_path, "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def wait_established(self, seconds: float = 60.0) -> None:
        """Every CRD Established. One applied a moment ago may have no status.conditions yet, which
        `kubectl wait` reports as an error instead of waiting: retry that until the deadline."""
        deadline = time.monotonic() + seconds
        while True:
            timeout = f"--timeout={seconds:.0f}s"
            waited = self.kubectl("wait", "--for=condition=Established", "crd", "--all", timeout, check=False)
            if waited.returncode == 0:
                return
            if time.monotonic() >= deadline:
                raise AssertionError(f"CRDs not Established within {seconds:.0f}s: {waited.stderr}")
            time.sleep(1.0)

    def apply(
        self, manifest: dict[str, Any] | str, namespace: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        ns = ["--namespace", namespace] if namespace else []
        return self.kubectl("apply", *ns, "-f", "-", input=text, check=False)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(
            self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
        )
        return result

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=self.kubeconfig)


def llmrollout(kube: Kube, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The `llmrollout` command of this checkout against the test cluster."""
    return subprocess.run(
        [sys.executable, "-m", "llmrollout.cli", *args, "--kubeconfig", kube.kubeconfig],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll until condition() is truthy; fail with `what` and the last value when the deadline passes."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


def write_status_retrying(
    api: client.ApiClient, namespace: str, name: str, status_of: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """Writes status_of(the object) at its current version through the operator's own write, reading
    again when it was stale: the session's operator, when one runs, may write in between."""
    for _ in range(20):
        current = get_llmdeployment(api, namespace, name)
        version = current["metadata"]["resourceVersion"]
        try:
            return write_status(api, namespace, name, version, status_of(current))
        except StaleObjectError:
            continue
    raise AssertionError("20 status writes in a row were stale")
