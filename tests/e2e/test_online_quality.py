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

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Kube, wait_for
from tests.e2e.harness.fixtures import ModelServers, Traffic
from tests.e2e.harness.modelserver import Behaviour
from tests.e2e.harness.prometheus import PrometheusServer
from tests.e2e.scenario import (
    INTERVAL_SECONDS,
    Case,
    Rollout,
    assert_judged,
    concurrent_rollouts,
    decide_concurrently,
    slos_for,
    start_rollout,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("gateway_api", "operator")]

RATE = 30.0  # requests per second per scenario, both versions together
SLOS: dict[str, Any] = {
    **slos_for("sequential"),
    # Users give a thumbs-down to 20% of stable's answers; twice that share is the regression to catch.
    "feedback": {"maxDownRateVsStable": 1.0},
}
# Generous for a shared 2-core machine: at this traffic each decision takes well under a minute.
DECIDED_WITHIN = 60 * INTERVAL_SECONDS + 60

CASES = [
    Case("healthy", Behaviour(), "Promoted", judge=True),
    Case("quality", Behaviour(quality_mean=0.55, quality_sd=0.05), "RolledBack", "quality", judge=True),
    # Answers as good as stable's (the judge scores them alike), but three times the thumbs-down.
    Case("feedback", Behaviour(thumbs_down_rate=0.6), "RolledBack", "feedback", judge=True),
]


@pytest.mark.timeout(900)
def test_online_quality_and_feedback_through_the_real_judge(
    kube: Kube,
    prometheus: PrometheusServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    report: list[str],
) -> None:
    def start(case: Case, namespace: str, servers: ModelServers, traffic: Traffic) -> Rollout:
        return start_rollout(
            kube,
            namespace,
            prometheus,
            servers,
            traffic,
            candidate_behaviour=case.behaviour,
            rate=RATE,
            method="sequential",
            slos=SLOS,
            judge=case.judge,
            traffic_seconds=DECIDED_WITHIN + 60,
        )

    with concurrent_rollouts(
        kube, prometheus, request, CASES, start, prefix="e2e-judge", workdir=tmp_path
    ) as rollouts:
        outcomes = decide_concurrently(CASES, rollouts, lambda c, r: r.wait_phase(c.expect, DECIDED_WITHIN))
        for case, status, seconds in outcomes:
            rollout = rollouts[case.name]
            report.append(
                f"online quality via llmrollout judge: {case.name} -> {status['phase']} in {seconds:.0f}s"
            )
            assert_judged(rollout, prometheus)
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
