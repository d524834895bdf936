"""The local cluster is a real Kubernetes control plane, and kwok's fake nodes run pods."""

from __future__ import annotations

import json
import re

from tests.e2e.cluster import Kube, versions, wait_for


def test_api_server_is_a_real_kube_apiserver(kube: Kube) -> None:
    info = json.loads(kube.kubectl("get", "--raw", "/version").stdout)
    assert re.fullmatch(r"v1\.\d+\.\d+.*", info["gitVersion"]), info
    if kube.started_here:
        assert info["gitVersion"] == versions()["KUBE_VERSION"]
    print(f"kube-apiserver {info['gitVersion']} ({info['goVersion']}, {info['platform']})")


def test_deployment_gets_running_pods(kube: Kube, namespace: str) -> None:
    kube.kubectl(
        "create", "deployment", "web", "--image=registry.invalid/web:1", "--replicas=2", "-n", namespace
    )

    def running() -> list[str]:
        pods = json.loads(kube.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
        phases = [p["status"].get("phase") for p in pods]
        return phases if phases.count("Running") == 2 else []

    wait_for(running, 60, "two Running pods")
    kube.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=60s")
