"""The closed loop on the real cluster and the real Prometheus: promote a healthy candidate, roll back
regressions injected mid-rollout, hold while Prometheus is down, survive an operator restart."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.e2e.cluster import REPO, Kube, wait_for
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.scenario import INTERVAL_SECONDS, NAME, Rollout, slos_for, start_rollout

pytestmark = pytest.mark.usefixtures("gateway_api", "operator")

# Each window spans INTERVAL_SECONDS; a few windows, plus the scrape interval and the tick, bound a decision.
DECISION_TIMEOUT = 6 * INTERVAL_SECONDS + 10


@pytest.fixture
def env(rollout_env: dict[str, Any]) -> dict[str, Any]:
    return rollout_env


@pytest.mark.parametrize("method", ["threshold", "sequential"])
def test_healthy_candidate_is_promoted_through_every_step(
    env: dict[str, Any], report: list[str], method: str
) -> None:
    started = time.monotonic()
    rollout = start_rollout(**env, method=method, slos=slos_for(method))
    rollout.watch_route()
    status = rollout.wait_phase("Promoted", 5 * DECISION_TIMEOUT)
    rollout.stop_watching()
    assert status["stable"] == "v2" and status["weights"] == {"v1": 0, "v2": 100}
    assert rollout.route_weights() == {"bot-v1": 0, "bot-v2": 100}
    # The route carried each step's weight, in order, none skipped or repeated.
    assert [w for w in rollout.seen_weights if w] == [20, 50, 100], rollout.seen_weights
    # Kopf posts Events from a queue of its own: on a busy machine they may trail the status a little.
    wait_for(lambda: rollout.event_messages("Promoted"), 30, "the Promoted Event")
    assert len(rollout.event_messages("StepAdvanced")) == 1
    assert "promoted" in rollout.event_messages("Promoted")[0]
    sent = rollout.generator.stats()
    assert sent.total_sent > 0
    report.append(f"healthy ({method}): promoted in {time.monotonic() - started:.1f}s")


REGRESSIONS = {
    "ttft": ({"ttft_median_s": 1.5}, {}, "ttft p95"),
    "error-rate": ({"error_rate": 0.5}, {}, "errorRate"),
    "quality-drop": ({"quality_mean": 0.55, "quality_sd": 0.05}, {}, "quality"),
    "cost-per-request": ({"output_tokens": 900.0, "output_tokens_jitter": 10.0}, {}, "costPerRequest"),
    "custom-query": (
        {"output_tokens": 900.0},
        {
            "slos": {
                "custom": [
                    {
                        "name": "output-tokens-per-request",
                        "query": 'sum(increase(gen_ai_client_token_usage_sum{variant="{{variant}}",'
                        'namespace="{{namespace}}",gen_ai_token_type="output"}[{{interval}}])) / '
                        'sum(increase(gen_ai_client_token_usage_count{variant="{{variant}}",'
                        'namespace="{{namespace}}",gen_ai_token_type="output"}[{{interval}}]))',
                        "max": 400,
                    }
                ]
            }
        },
        "output-tokens-per-request",
    ),
}


@pytest.mark.parametrize("method", ["threshold", "sequential"])
@pytest.mark.parametrize("case", list(REGRESSIONS))
def test_regression_mid_rollout_rolls_back(
    env: dict[str, Any], report: list[str], case: str, method: str
) -> None:
    behaviour, overrides, slo = REGRESSIONS[case]
    rollout = start_rollout(
        **env, steps=[20, 50, 80, 100], method=method, **{"slos": slos_for(method), **overrides}
    )
    rollout.wait_step(50, 3 * DECISION_TIMEOUT)
    injected = time.monotonic()
    rollout.candidate_server.configure(**behaviour)
    # The sequential cost test pools the whole rollout and bounds each request's cost by 10x the SLO,
    # so a mid-rollout cost regression takes several windows to prove (reported, not hidden).
    status = rollout.wait_phase(
        "RolledBack", DECISION_TIMEOUT if method == "threshold" else 4 * DECISION_TIMEOUT
    )
    wait_for(lambda: rollout.candidate_share() == 0, 10, "candidate at 0% in the HTTPRoute")
    elapsed = time.monotonic() - injected
    unit = env["prometheus"].scrape_interval + INTERVAL_SECONDS
    report.append(
        f"{case}: injected -> candidate 0% in {elapsed:.1f}s = {elapsed / unit:.2f} x (scrape + interval)"
    )
    assert status["weights"] == {"v1": 100, "v2": 0}
    rolled_back = rollout.event_messages("RolledBack")
    assert rolled_back and slo in rolled_back[-1] and "on v2" in rolled_back[-1], rolled_back
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "SLOBreached" and slo in progressing["message"]


def test_prometheus_down_holds_then_resumes(env: dict[str, Any]) -> None:
    rollout = start_rollout(**env, inconclusive_limit=50)
    rollout.wait_step(20, DECISION_TIMEOUT)
    env["prometheus"].stop()

    def metrics_down() -> dict[str, Any] | None:
        status = rollout.status()
        down = any(
            c["type"] == "MetricsAvailable" and c["status"] == "False" for c in status.get("conditions", [])
        )
        return status if down else None

    status = wait_for(metrics_down, DECISION_TIMEOUT, "MetricsAvailable=False")
    held_at = status["candidateWeight"]
    metrics = next(c for c in status["conditions"] if c["type"] == "MetricsAvailable")
    assert "Prometheus" in metrics["message"] or "connect" in metrics["message"].lower(), metrics
    time.sleep(3 * INTERVAL_SECONDS)
    status = rollout.status()
    assert status["phase"] == "Progressing" and status["candidateWeight"] == held_at
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "Inconclusive", progressing
    env["prometheus"].start()
    rollout.wait_phase("Promoted", 4 * DECISION_TIMEOUT)


def test_operator_restart_continues_from_status(env: dict[str, Any], operator: OperatorProcess) -> None:
    rollout = start_rollout(**env, steps=[10, 20, 30, 40, 50, 100])
    rollout.watch_route()
    rollout.wait_step(30, 3 * DECISION_TIMEOUT)
    # Killed once the route carries the step too: status is written just before the route, and a
    # kill between the two writes is what test_reliability's route-write tests cover.
    wait_for(lambda: rollout.candidate_share() >= 30, 10, "the route at 30% before the kill")
    operator.stop(kill=True)
    time.sleep(INTERVAL_SECONDS * 1.5)
    operator.start()
    status = rollout.wait_phase("Promoted", 6 * DECISION_TIMEOUT)
    rollout.stop_watching()
    assert [w for w in rollout.seen_weights if w] == [10, 20, 30, 40, 50, 100], rollout.seen_weights
    advanced = [h["message"].split(" (")[0] for h in status["history"] if h["reason"] == "StepAdvanced"]
    assert advanced == [f"v2 to {w}%" for w in (20, 30, 40, 50)], advanced


def cli(kube: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "llmrollout.cli", *args, "--kubeconfig", kube.kubeconfig],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_cli_pause_resume_promote_and_abort(env: dict[str, Any]) -> None:
    kube, ns = env["kube"], env["namespace"]
    # Small steps after 40%: the status and promote commands below must run before the rollout
    # promotes itself, six 4 s looks later at the soonest, while each CLI start can take ~4 s.
    rollout = start_rollout(**env, steps=[20, 40, 50, 60, 70, 80, 90, 100])
    rollout.wait_step(20, DECISION_TIMEOUT)
    assert "paused" in cli(kube, "pause", NAME, "-n", ns).stdout
    status = rollout.wait_phase("Paused", 10)
    time.sleep(2 * INTERVAL_SECONDS)
    assert rollout.status()["candidateWeight"] == status["candidateWeight"]
    cli(kube, "resume", NAME, "-n", ns)
    rollout.wait_step(40, DECISION_TIMEOUT)
    shown = cli(kube, "status", NAME, "-n", ns).stdout
    # A step lasts one 4 s interval, about what starting the CLI takes on a loaded machine: the
    # rollout may have moved on a step or two by the time the CLI reads it.
    weight = re.search(r"candidate: v2 at (\d+)%", shown)
    assert (
        "Progressing" in shown and weight is not None and int(weight.group(1)) in (40, 50, 60, 70, 80, 90)
    ), shown
    cli(kube, "promote", NAME, "-n", ns)
    status = rollout.wait_phase("Promoted", 10)
    assert status["stable"] == "v2" and rollout.route_weights()["bot-v2"] > 0
    assert "by a user" in rollout.event_messages("Promoted")[-1]

    # The user records the promotion in spec (as GitOps would) and rolls v1 out again; abort sends it back.
    manifest = rollout.manifest
    manifest["spec"]["stable"] = "v2"
    manifest["spec"]["candidate"] = "v1"
    rollout.apply(manifest)
    rollout.wait_step(20, DECISION_TIMEOUT)
    cli(kube, "abort", NAME, "-n", ns)
    status = rollout.wait_phase("RolledBack", 10)
    assert status["weights"] == {"v1": 0, "v2": 100}
    wait_for(lambda: rollout.route_weights() == {"bot-v1": 0, "bot-v2": 100}, 10, "route back on v2")
    assert isinstance(rollout, Rollout)


def test_weights_changed_by_someone_else_are_restored(env: dict[str, Any]) -> None:
    rollout = start_rollout(**env, min_requests=10**6)  # stays at the first step
    rollout.wait_step(20, DECISION_TIMEOUT)
    wait_for(lambda: rollout.candidate_share() == 20, 10, "the first step on the route")
    patch = '[{"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 0}]'
    names = [
        ref["name"]
        for ref in rollout.kube.get("httproute", NAME, env["namespace"])["spec"]["rules"][0]["backendRefs"]
    ]
    index = names.index("bot-v2")
    patched = env["kube"].kubectl(
        "patch",
        "httproute",
        NAME,
        "-n",
        env["namespace"],
        "--type=json",
        "-p",
        patch.replace("/1/", f"/{index}/"),
        "-o",
        "json",
    )
    # The patch's own answer, not a later read: the operator may restore 20% at its next look, which
    # can come before a second kubectl call does on a loaded machine.
    assert json.loads(patched.stdout)["spec"]["rules"][0]["backendRefs"][index]["weight"] == 0
    wait_for(lambda: rollout.candidate_share() == 20, DECISION_TIMEOUT, "the operator restoring 20%")
    drifted = wait_for(lambda: rollout.event_messages("WeightsDrifted"), 10, "a WeightsDrifted Event")
    assert "v2 20% -> 0%" in drifted[0], drifted
