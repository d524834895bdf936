"""The golden-set gate on the real cluster: the operator reads the set from a real ConfigMap, asks
candidate and stable (OpenAI-compatible stand-ins on the real HTTP path, their answers scripted) every
item, scores them, and decides with the paired test before any traffic moves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bench.judge.standin import OpenAIStandIn, answering
from tests.e2e.cluster import Kube, wait_for
from tests.e2e.scenario import NAME, Rollout, slos_for, start_rollout

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("gateway_api", "operator")]

ITEMS = 60
EVALUATION = {
    "goldenSet": {"configMapRef": {"name": "golden"}, "scorer": "exactMatch", "maxDropVsStable": 0.05}
}


model = answering


@pytest.fixture
def answering() -> Iterator[dict[str, OpenAIStandIn]]:
    with (
        OpenAIStandIn(chat=model(0.95)) as stable,
        OpenAIStandIn(chat=model(0.95)) as good_candidate,
        OpenAIStandIn(chat=model(0.5)) as bad_candidate,
    ):
        yield {"stable": stable, "good": good_candidate, "bad": bad_candidate}


def golden_set(kube: Kube, namespace: str) -> None:
    lines = [
        json.dumps({"id": f"q{i:02d}", "prompt": f"question {i}", "reference": f"answer {i}"})
        for i in range(ITEMS)
    ]
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "golden"},
        "data": {"golden.jsonl": "\n".join(lines) + "\n"},
    }
    result = kube.apply(manifest, namespace)
    assert result.returncode == 0, result.stderr


def gated_rollout(env: dict[str, Any], stable: OpenAIStandIn, candidate: OpenAIStandIn) -> Rollout:
    """The golden set in its ConfigMap, then a rollout whose variants answer it at these endpoints."""
    golden_set(env["kube"], env["namespace"])
    endpoints = {"v1": stable.base_url, "v2": candidate.base_url}
    return start_rollout(
        **env, method="sequential", endpoints=endpoints, evaluation=EVALUATION, slos=slos_for("sequential")
    )


def test_a_candidate_worse_on_the_golden_set_is_rolled_back_before_any_traffic(
    rollout_env: dict[str, Any], answering: dict[str, OpenAIStandIn]
) -> None:
    rollout = gated_rollout(rollout_env, answering["stable"], answering["bad"])
    wait_for(lambda: rollout.status().get("phase") in ("Evaluating", "RolledBack"), 60, "the gate")
    before = rollout.kube.get("httproute", NAME, rollout.namespace)["metadata"]["resourceVersion"]
    # 60 items asked of both versions and scored: seconds alone, a few minutes on a busy CI machine.
    status = rollout.wait_phase("RolledBack", 300)
    assert status["conditions"] and any(
        c["type"] == "Progressing" and c["reason"] == "GoldenSetFailed" for c in status["conditions"]
    ), rollout.explain()
    result = status["evaluation"]["result"]
    assert result["n"] == ITEMS and result["drop"] > 0.3 and result["worstItems"]
    # Kopf posts Events from a queue of its own, which may trail the status a little.
    message = wait_for(lambda: rollout.event_messages("RolledBack"), 30, "the RolledBack Event")[0]
    assert "golden set score" in message and "drop" in message and f"n={ITEMS}" in message
    # No traffic ever moved: the route is exactly as the operator found it before the gate.
    after = rollout.kube.get("httproute", NAME, rollout.namespace)["metadata"]["resourceVersion"]
    assert after == before
    assert rollout.route_weights().get("bot-v2", 0) == 0
    # Every item was asked of both versions (a retried request, on a busy machine, asks one twice).
    for name in ("bad", "stable"):
        asked = {json.dumps(body.get("messages"), sort_keys=True) for _, body in answering[name].requests}
        assert len(asked) == ITEMS, name


def test_a_candidate_as_good_as_stable_passes_the_gate_and_is_promoted(
    rollout_env: dict[str, Any], answering: dict[str, OpenAIStandIn]
) -> None:
    rollout = gated_rollout(rollout_env, answering["stable"], answering["good"])
    status = rollout.wait_phase("Promoted", 300)
    assert status["evaluation"]["result"]["reason"] == "GoldenSetPassed"
    assert wait_for(lambda: rollout.event_messages("GoldenSetPassed"), 30, "the GoldenSetPassed Event")
