"""`llmrollout` commands against the real apiserver: each one changes what it says it changes.

The session's operator is stopped for this module, so a requested action stays on the object for
the test to see (the operator acting on it is tested in test_rollout and test_reliability).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.e2e.cluster import REPO, Kube
from tests.e2e.operator_process import OperatorProcess

NAME = "support-bot"
ACTION = "llmrollout.io/action"


def llmrollout(kube: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmrollout.cli", *args, "--kubeconfig", kube.kubeconfig],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def no_operator(operator: OperatorProcess) -> Iterator[None]:
    operator.stop()
    yield
    operator.start()


@pytest.fixture
def deployed(kube: Kube, namespace: str, no_operator: None) -> str:
    kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples/basic.yaml"))
    return namespace


@pytest.mark.parametrize(
    ("command", "said"),
    [("promote", "promotion requested"), ("abort", "abort requested"), ("failback", "failback requested")],
)
def test_one_off_actions_set_the_annotation(kube: Kube, deployed: str, command: str, said: str) -> None:
    result = llmrollout(kube, command, NAME, "-n", deployed)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"llmdeployment {deployed}/{NAME}: {said}"
    annotations = kube.get("llmd", NAME, deployed)["metadata"].get("annotations", {})
    assert annotations.get(ACTION) == command


def test_pause_and_resume_set_spec_paused(kube: Kube, deployed: str) -> None:
    paused = llmrollout(kube, "pause", NAME, "-n", deployed)
    assert paused.returncode == 0 and paused.stdout.strip().endswith(": paused"), paused.stderr
    assert kube.get("llmd", NAME, deployed)["spec"]["paused"] is True
    resumed = llmrollout(kube, "resume", NAME, "-n", deployed)
    assert resumed.returncode == 0 and resumed.stdout.strip().endswith(": resumed"), resumed.stderr
    assert kube.get("llmd", NAME, deployed)["spec"]["paused"] is False


def test_status_of_an_object_without_status(kube: Kube, deployed: str) -> None:
    result = llmrollout(kube, "status", NAME, "-n", deployed)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{deployed}/{NAME}: Pending"


@pytest.mark.parametrize("command", ["status", "promote", "abort", "failback", "pause", "resume"])
def test_a_missing_object_is_named(kube: Kube, namespace: str, command: str) -> None:
    result = llmrollout(kube, command, "nope", "-n", namespace)
    assert result.returncode == 1
    assert result.stderr.strip() == f"llmrollout {command}: LLMDeployment {namespace}/nope not found"
