"""Online quality and user feedback through the real judge: the model servers export no eval metrics;
the traffic generator posts a sample of its exchanges and the users' thumbs to a real `llmrollout judge`
process, whose judge model (a stand-in) grades by the answers' scripted quality, and the real
Prometheus scrapes the judge's /metrics.

The scenarios run at once, each in its own namespace with its own judge, so that the suite pays for
the slowest one only:
- a healthy candidate is promoted;
- a quality regression is rolled back, naming quality;
- a thumbs-down regression (answers as good, users unhappier) is rolled back, naming feedback.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Kube, wait_for
from tests.e2e.harness.fixtures import ModelServers, Traffic
from tests.e2e.harness.modelserver import Behaviour
from tests.e2e.harness.prometheus import PrometheusServer
from tests.e2e.scenario import INTERVAL_SECONDS, Rollout, slos_for, start_rollout

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("gateway_api", "operator")]

RATE = 30.0  # requests per second per scenario, both versions together
SLOS: dict[str, Any] = {
    **slos_for("sequential"),
    # Users give a thumbs-down to 20% of stable's answers; twice that share is the regression to catch.
    "feedback": {"maxDownRateVsStable": 1.0},
}
# Generous for a shared 2-core machine: at this traffic each decision takes well under a minute.
DECIDED_WITHIN = 60 * INTERVAL_SECONDS + 60


@dataclass(frozen=True)
class Case:
    name: str
    behaviour: Behaviour
    expect: str
    slo: str | None = None  # the SLO a rollback must name


CASES = [
    Case("healthy", Behaviour(), "Promoted"),
    Case("quality", Behaviour(quality_mean=0.55, quality_sd=0.05), "RolledBack", "quality"),
    # Answers as good as stable's (the judge scores them alike), but three times the thumbs-down.
    Case("feedback", Behaviour(thumbs_down_rate=0.6), "RolledBack", "feedback"),
]


@pytest.fixture
def namespaces(kube: Kube) -> Iterator[list[str]]:
    names = [f"e2e-judge-{case.name}-{uuid.uuid4().hex[:6]}" for case in CASES]
    for name in names:
        kube.kubectl("create", "namespace", name)
    yield names
    for name in names:
        kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _run(case: Case, rollout: Rollout) -> tuple[Case, dict[str, Any], float]:
    started = time.monotonic()
    status = rollout.wait_phase(case.expect, DECIDED_WITHIN)
    return case, status, time.monotonic() - started


def _eval_sources(prometheus: PrometheusServer, namespace: str) -> dict[str, set[str]]:
    """Which scrape targets (by their service label) the namespace's eval and feedback series come from."""
    sources: dict[str, set[str]] = {}
    for metric in ("llm_eval_score_count", "llm_eval_results_total", "llm_feedback_total"):
        found = prometheus.query(f'count by (service) ({metric}{{namespace="{namespace}"}})')
        sources[metric] = {sample.labels.get("service", "") for sample in found}
    return sources


@pytest.mark.timeout(900)
def test_online_quality_and_feedback_through_the_real_judge(
    kube: Kube,
    namespaces: list[str],
    prometheus: PrometheusServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    report: list[str],
) -> None:
    # Servers and judges are named per rollout (bot-v1, bot-v2, judge), so each namespace gets its own.
    servers = {case.name: ModelServers(prometheus, tmp_path) for case in CASES}
    traffic = {case.name: Traffic(request, servers[case.name]) for case in CASES}
    try:
        rollouts = {
            case.name: start_rollout(
                kube,
                namespace,
                prometheus,
                servers[case.name],
                traffic[case.name],
                candidate_behaviour=case.behaviour,
                rate=RATE,
                method="sequential",
                slos=SLOS,
                judge=True,
                traffic_seconds=DECIDED_WITHIN + 60,
            )
            for case, namespace in zip(CASES, namespaces, strict=True)
        }
        with ThreadPoolExecutor(len(CASES)) as pool:
            outcomes = list(pool.map(lambda c: _run(c, rollouts[c.name]), CASES))
        for case, status, seconds in outcomes:
            rollout = rollouts[case.name]
            report.append(
                f"online quality via llmrollout judge: {case.name} -> {status['phase']} in {seconds:.0f}s"
            )
            # The eval and feedback series the operator read came from the judge, not the model servers.
            assert _eval_sources(prometheus, rollout.namespace) == {
                "llm_eval_score_count": {"judge"},
                "llm_eval_results_total": {"judge"},
                "llm_feedback_total": {"judge"},
            }
            assert not any(server.sample("llm_eval_score_count") for server in rollout.servers.values())
            judge = servers[case.name].judges["judge"]
            sent = rollout.generator.stats()
            assert sent.judge_errors == 0 and sent.judged.get("bot-v2", 0) > 0, sent
            assert judge.sample("llm_eval_score_count", variant="v2") > 0
            assert judge.sample("llm_feedback_total", variant="v2") > 0
            if case.expect == "Promoted":
                assert status["stable"] == "v2" and status["weights"] == {"v1": 0, "v2": 100}
                results = {r["slo"]: r for r in status["analysis"]["results"]}
                assert results["feedback.maxDownRateVsStable"]["verdict"] == "Pass", rollout.explain()
            else:
                events = wait_for(
                    lambda r=rollout: r.event_messages("RolledBack"), 30, "the RolledBack Event"
                )
                message = " ".join(events)
                report.append(
                    f"online quality via llmrollout judge: {case.name} rolled back: {events[-1][:300]}"
                )
                assert case.slo is not None and case.slo in message and "on v2" in message, rollout.explain()
                assert status["weights"] == {"v1": 100, "v2": 0}
                assert rollout.route_weights()["bot-v2"] == 0
    finally:
        for name, generators in traffic.items():
            generators.close()
            servers[name].close()
