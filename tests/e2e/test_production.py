"""Decisions that finish under production conditions: Prometheus scraping every 15 s, a 30 s analysis
interval, a few requests per second, the default (sequential) method.

All scenarios run at once, each in its own namespace on one Prometheus of their own (15 s scrapes), so
that the slow conditions cost the suite the time of the slowest scenario, not their sum:
- a healthy candidate is promoted, and `kubectl describe` shows the plan;
- TTFT, error, quality and output-token (cost) regressions are each rolled back, naming their SLO;
- with quality and feedback from a real `llmrollout judge` (the model servers export no eval metrics),
  a quality regression and a thumbs-down regression are each rolled back, naming their SLO;
- a horizon too short for the traffic gets a HorizonTooShort Warning, and still ends decided.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Kube, wait_for
from tests.e2e.harness.fixtures import ModelServers, Traffic
from tests.e2e.harness.modelserver import Behaviour
from tests.e2e.harness.prometheus import PrometheusError, PrometheusServer
from tests.e2e.scenario import (
    NAME,
    Case,
    Rollout,
    assert_judged,
    concurrent_rollouts,
    decide_concurrently,
    start_rollout,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("gateway_api", "operator")]

SCRAPE = "15s"
INTERVAL = "30s"
RATE = 4.0  # requests per second, both versions together
SLOS: dict[str, Any] = {
    "errorRate": {"max": 0.05},
    "ttft": {"p95": "800ms"},
    # Mean scores are bounded only by [0, 1] (their variance is not read yet), so a drop of 0.1 takes
    # ~500 judged answers per version: an hour at this traffic. 0.2 is provable within minutes.
    "quality": {"minScore": 0.7, "maxDropVsStable": 0.2},
    "costPerRequest": {"maxUSD": 0.0001},
}
# Users give a thumbs-down to 20% of stable's answers; twice that share is the regression to catch.
JUDGED_SLOS: dict[str, Any] = {**SLOS, "feedback": {"maxDownRateVsStable": 1.0}}
# The application posts every exchange to the judge, which scores half of them (its --sample-rate):
# 2 judged answers/s, 0.2/s of the candidate's at the first step (10%). A candidate failing nearly every
# judged answer is rolled back by its failures against stable's (an SPRT) after a few dozen of them. A
# 0.3 share of exchanges gets the user's thumbs: 0.12/s on the candidate at 10%, where three times stable's
# thumbs-down share took ~40 of them (6.5 min); four times takes fewer.
POSTED = 1.0
JUDGE_SAMPLE_RATE = 0.5
HORIZON = "20m"
# Every rollout must end, promoted or rolled back, well within this (the horizon is 20 minutes).
DECIDED_WITHIN = 16 * 60.0


# The healthy case's horizon, with room: the plan's estimate for proving the quality bounds at the
# traffic the generator reaches on a busy 2-core machine came to ~24 min once (a HorizonTooShort Warning
# against 20 min), though the candidate is promoted in about 6.
HEALTHY_HORIZON = "40m"

CASES = [
    Case("healthy", Behaviour(), "Promoted", max_duration=HEALTHY_HORIZON),
    Case("ttft", Behaviour(ttft_median_s=1.5), "RolledBack", "ttft"),
    Case("errors", Behaviour(error_rate=0.3), "RolledBack", "errorRate"),
    Case("quality", Behaviour(quality_mean=0.55, quality_sd=0.05), "RolledBack", "quality"),
    # Prometheus gives sums, not each request's cost: the mean cost's variance is bounded by the token
    # histograms' upper edges (and a cap of 10 x maxUSD per request above the last one), so a cost
    # regression must be large to show within minutes at these rates.
    Case(
        "output-tokens",
        Behaviour(output_tokens=3000.0, output_tokens_jitter=10.0),
        "RolledBack",
        "costPerRequest",
    ),
    # A 2-minute horizon cannot hold the warm-up and the steps at 4 requests/s.
    Case("short-horizon", Behaviour(), "", max_duration="2m"),
    # Judged answers scored ~0.55 against stable's ~0.9: nearly all fail the 0.7 pass threshold.
    Case(
        "judge-quality",
        Behaviour(quality_mean=0.55, quality_sd=0.05),
        "RolledBack",
        "quality",
        judge=True,
    ),
    # Answers as good as stable's (the judge scores them alike), but four times the thumbs-down.
    Case("judge-feedback", Behaviour(thumbs_down_rate=0.8), "RolledBack", "feedback", judge=True),
]


@pytest.fixture(scope="module")
def slow_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus-15s"), scrape_interval=15.0)
    try:
        server.start()
    except PrometheusError as exc:
        pytest.fail(f"the real Prometheus did not start: {exc}", pytrace=False)
    yield server
    server.stop()


def _decide(case: Case, rollout: Rollout) -> dict[str, Any]:
    if case.expect == "Promoted":
        # While it rolls out, `kubectl describe` shows the plan: per SLO, canary requests and minutes to
        # a decision at the traffic seen (once decided, every SLO says "decided").
        def plan_shown() -> str | None:
            described = rollout.kube.kubectl("describe", "llmd", NAME, "-n", rollout.namespace).stdout
            # The Planned condition comes once the warm-up is over; a look whose 15 s window caught no
            # scrape knows no traffic rate, a later one does.
            shown = "Planned" in described and "min at current traffic" in described
            return described if shown else None

        rollout.described_plan = wait_for(
            plan_shown, DECIDED_WITHIN, "the plan in kubectl describe", interval=5.0
        )
    if case.expect:
        return rollout.wait_phase(case.expect, DECIDED_WITHIN)
    return rollout.wait_phase_in(("Promoted", "RolledBack"), DECIDED_WITHIN)


def _section(described: str, heading: str) -> str:
    """The lines of `kubectl describe` under `heading`: those indented deeper than it."""
    lines = described.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        return ""
    depth = len(lines[start]) - len(lines[start].lstrip())
    section = []
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= depth:
            break
        section.append(line)
    return "\n".join(section)


@pytest.mark.timeout(1500)
def test_rollouts_finish_under_production_conditions(
    kube: Kube,
    slow_prometheus: PrometheusServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    report: list[str],
) -> None:
    def start(case: Case, namespace: str, servers: ModelServers, traffic: Traffic) -> Rollout:
        return start_rollout(
            kube,
            namespace,
            slow_prometheus,
            servers,
            traffic,
            candidate_behaviour=case.behaviour,
            rate=RATE,
            method="sequential",
            slos=JUDGED_SLOS if case.judge else SLOS,
            judge=case.judge,
            posted=POSTED,
            judge_sample_rate=JUDGE_SAMPLE_RATE,
            steps=[10, 50, 100],
            interval=INTERVAL,
            scrape_interval=SCRAPE,
            max_duration=case.max_duration or HORIZON,
            # A few requests a second: a step needs a minute or two of them.
            min_requests=50,
            traffic_seconds=DECIDED_WITHIN + 120,
        )

    with concurrent_rollouts(
        kube, slow_prometheus, request, CASES, start, prefix="e2e-prod", workdir=tmp_path
    ) as rollouts:
        for case, status, seconds in decide_concurrently(CASES, rollouts, _decide):
            rollout = rollouts[case.name]
            report.append(
                f"production ({SCRAPE} scrapes, {INTERVAL} interval): {case.name} -> {status['phase']}"
                f" in {seconds:.0f}s"
            )
            if case.judge:
                assert_judged(rollout, slow_prometheus)
            if case.expect == "Promoted":
                assert status["stable"] == "v2" and status["weights"] == {"v1": 0, "v2": 100}
                described = rollout.described_plan
                assert "Planned" in described and "min at current traffic" in described, described
                # What the plan does not know yet is left out, not shown as <nil>.
                plan = _section(described, "Plan:")
                assert "Minutes Left:" in plan and "<nil>" not in plan, plan
                assert not rollout.event_messages("HorizonTooShort")
            elif case.expect == "RolledBack":
                events = wait_for(
                    lambda r=rollout: r.event_messages("RolledBack"), 30, "the RolledBack Event"
                )
                message = " ".join(events)
                if case.judge:
                    report.append(
                        f"production ({SCRAPE} scrapes): {case.name} rolled back: {events[-1][:300]}"
                    )
                assert case.slo is not None and case.slo in message, rollout.explain()
                assert rollout.route_weights()["bot-v2"] == 0
            else:
                warnings = wait_for(
                    lambda r=rollout: r.event_messages("HorizonTooShort"), 30, "the HorizonTooShort Event"
                )
                assert warnings and "the horizon (2m) is too short" in warnings[0], rollout.explain()
