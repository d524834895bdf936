"""e2e fixtures: a real cluster (KUBECONFIG, or the local kwok cluster started here), the CRDs, the operator.

An e2e test never skips: without a cluster it fails, with the reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmrollout.api.crd import render as render_crd
from tests.e2e import summary
from tests.e2e.cluster import REPO, Kube, built_kubectl, cache_dir, versions, wait_for
from tests.e2e.harness.fixtures import *  # noqa: F403  (prometheus, model_servers, traffic, gateway_api)
from tests.e2e.operator_process import OperatorProcess

# Overridable so that two checkouts on one machine can each run their own cluster at once. Each
# pytest-xdist worker gets a cluster of its own: the session's operator acts on every namespace, and some
# tests change cluster-wide objects (admission policies, CRDs) or stop that operator.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
E2E_CLUSTER_NAME = "-".join(
    filter(None, [os.environ.get("LLMROLLOUT_E2E_CLUSTER", "llmrollout-e2e"), XDIST_WORKER])
)
# Subprocesses (the operator, the CLI) run this checkout's package, not whichever one the venv was
# installed from.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")])
)


def _hack(script: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", str(REPO / "hack" / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"hack/{script} failed ({result.returncode}); no cluster to test against:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    given = os.environ.get("KUBECONFIG")
    env = {**os.environ, "CLUSTER_NAME": E2E_CLUSTER_NAME}
    if given:
        if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
            pytest.fail(
                f"KUBECONFIG={given} is one cluster, and each pytest-xdist worker runs an operator on every"
                " namespace of its own cluster: run the e2e tests with -n 0 (make test does when KUBECONFIG"
                " is set)",
                pytrace=False,
            )
        kubectl = shutil.which("kubectl") or str(built_kubectl())
        cluster = Kube(kubeconfig=given, kubectl_path=kubectl)
    else:
        # One worker at a time creates its cluster: kwokctl shares its cache between clusters.
        with _cluster_lock():
            _hack("cluster-up.sh", env)
        kubeconfig = cache_dir() / "clusters" / E2E_CLUSTER_NAME / "kubeconfig"
        cluster = Kube(kubeconfig=str(kubeconfig), kubectl_path=str(built_kubectl()), started_here=True)
    version = cluster.kubectl("get", "--raw", "/version", check=False)
    if version.returncode != 0:
        pytest.fail(
            f"no Kubernetes API server reachable with {cluster.kubeconfig}: {version.stderr}", pytrace=False
        )
    cluster.server_version = json.loads(version.stdout)["gitVersion"]
    summary.facts["cluster"] = f"kube-apiserver {cluster.server_version} ({cluster.kubeconfig})"
    # The fast tests use second-scale intervals, below the production CRD's floor (10s): the test
    # cluster gets the same CRD rendered with a lower one.
    crd = render_crd(min_interval=os.environ.get("LLMROLLOUT_E2E_MIN_INTERVAL", "1s"))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=crd)
    _wait_established(cluster)
    yield cluster
    if cluster.started_here and os.environ.get("LLMROLLOUT_KEEP_CLUSTER") != "1":
        _hack("cluster-down.sh", env)


@contextlib.contextmanager
def _cluster_lock() -> Iterator[None]:
    lock_path = cache_dir() / "clusters" / ".create.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _wait_established(cluster: Kube, seconds: float = 60.0) -> None:
    """Every CRD Established. One applied a moment ago may have no status.conditions yet, which
    `kubectl wait` reports as an error instead of waiting: retry that until the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        waited = cluster.kubectl(
            "wait", "--for=condition=Established", "crd", "--all", f"--timeout={seconds:.0f}s", check=False
        )
        if waited.returncode == 0:
            return
        if time.monotonic() >= deadline:
            pytest.fail(f"CRDs not Established within {seconds:.0f}s: {waited.stderr}", pytrace=False)
        time.sleep(1.0)


@pytest.fixture(scope="session")
def operator(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    process = OperatorProcess(kube.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    process.start()
    summary.facts["operator log"] = str(process.log_path)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def no_operator(operator: OperatorProcess) -> Iterator[None]:
    """The session's operator stopped for a module whose tests must see objects it would act on."""
    operator.stop()
    yield
    operator.start()


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, so tests sharing the cluster never see each other's objects."""
    name = f"e2e-{request.node.name[:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:6]}"
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def rollout_env(
    kube: Kube, namespace: str, prometheus: Any, model_servers: Any, traffic: Any
) -> dict[str, Any]:
    """What tests.e2e.scenario.start_rollout needs, for a fresh namespace."""
    return {
        "kube": kube,
        "namespace": namespace,
        "prometheus": prometheus,
        "model_servers": model_servers,
        "traffic": traffic,
    }


@pytest.fixture(scope="session")
def report() -> list[str]:
    """Lines that tests want in the session summary (measured times and the like)."""
    return summary.measured


__all__ = ["Kube", "Path", "kube", "namespace", "operator", "report", "rollout_env", "versions", "wait_for"]
