"""`llmrollout` commands against the real apiserver: each one changes what it says it changes.

The session's operator is stopped for this module, so a requested action stays on the object for
the test to see (the operator acting on it is tested in test_rollout and test_reliability).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.cluster import REPO, Kube, llmrollout
from tests.e2e.scenario import NAME as SCENARIO_NAME
from tests.e2e.scenario import llmdeployment

NAME = "support-bot"
ACTION = "llmrollout.io/action"


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


# --- check: the MetricsReady report against the real Prometheus (tests/e2e/test_metrics_ready.py has
# the operator's side of it) ---------------------------------------------------------------------


def _checked(kube: Kube, namespace: str, prometheus: Any, model_servers: Any, **metrics: Any) -> str:
    model_servers(namespace, {"bot-v1": "v1", "bot-v2": "v2"})
    manifest = llmdeployment(
        namespace,
        prometheus.address,
        slos={"errorRate": {"max": 0.05}, **TTFT},
        scrape_interval=f"{prometheus.scrape_interval:g}s",
    )
    manifest["spec"]["metrics"].update(metrics)
    result = kube.apply(manifest, namespace)
    assert result.returncode == 0, result.stderr
    return namespace


TTFT = {"ttft": {"p95": "800ms"}}


def test_check_finds_every_series_and_exits_0(
    kube: Kube, namespace: str, prometheus: Any, model_servers: Any, no_operator: None
) -> None:
    # model_servers returns once Prometheus holds its first scrape of the servers: their series
    # (at 0, no request yet) are then a moment old, and a moment old is found.
    _checked(kube, namespace, prometheus, model_servers)
    result = llmrollout(kube, "check", SCENARIO_NAME, "-n", namespace)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert (
        lines[0]
        == f"{namespace}/{SCENARIO_NAME}: series of v1 (serving) and v2 (candidate) in {prometheus.address}"
    )
    for slo in ("ttft:", "errorRate:"):
        assert slo in lines
    selector = f'{{variant="v2",namespace="{namespace}"}}'
    assert f"    found   ttft: gen_ai_server_time_to_first_token_seconds_bucket{selector}" in lines
    assert lines[-1] == "MetricsReady: True: every SLO's series found on v1"


def test_check_names_missing_series_and_exits_1(
    kube: Kube, namespace: str, prometheus: Any, model_servers: Any, no_operator: None
) -> None:
    # The servers' series carry `variant`, not `model_name`: nothing is found for either version.
    _checked(kube, namespace, prometheus, model_servers, variantLabel="model_name")
    result = llmrollout(kube, "check", SCENARIO_NAME, "-n", namespace)
    assert result.returncode == 1, result.stdout + result.stderr
    missing = (
        f'gen_ai_server_time_to_first_token_seconds_bucket{{model_name="v1",namespace="{namespace}"}} or'
    )
    assert f"    missing ttft: {missing}" in result.stdout
    assert '  - v1: no series carries model_name="v1"' in result.stdout
    assert result.stdout.splitlines()[-1].startswith(
        "MetricsReady: False: rollout of v2 not started: series missing on v1, which serves now:"
    )


def test_check_that_cannot_ask_exits_2(kube: Kube, deployed: str, prometheus: Any) -> None:
    # examples/basic.yaml names an in-cluster Prometheus this machine cannot resolve.
    unreachable = llmrollout(kube, "check", NAME, "-n", deployed)
    assert unreachable.returncode == 2, unreachable.stdout + unreachable.stderr
    assert "cannot check the series" in unreachable.stdout
    # --prometheus asks another one instead (as through kubectl port-forward): it answers. (Whether it
    # holds series with variant="v1" depends on the tests before: the object names no namespace label.)
    other = llmrollout(kube, "check", NAME, "-n", deployed, "--prometheus", prometheus.address)
    assert other.returncode in (0, 1), other.stdout + other.stderr
    assert f"in {prometheus.address}" in other.stdout.splitlines()[0]
    gone = llmrollout(kube, "check", "nope", "-n", deployed)
    assert gone.returncode == 2
    assert gone.stderr.strip() == f"llmrollout check: LLMDeployment {deployed}/nope not found"
