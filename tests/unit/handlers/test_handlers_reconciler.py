"""The reconciler's pure parts: what counts as applied, what a routing failure holds back, how the
analysis block is bounded. The reconcile itself runs against a real apiserver (tests/e2e)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from llmrollout import rollout
from llmrollout.api import LLMDeploymentSpec, LLMDeploymentStatus, Phase, with_condition
from llmrollout.api.status import MAX_MESSAGE
from llmrollout.handlers import reconciler

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("previous_phase", "moves_traffic", "held"),
    [
        (Phase.PROGRESSING, True, True),  # a step that cannot be routed waits
        (Phase.PROGRESSING, False, False),  # a decision that keeps the weights stands
        (None, True, False),  # the first status is written, with the reason traffic is not routed
        (Phase.FAILED, True, False),
    ],
)
def test_a_routing_failure_holds_only_decisions_that_move_traffic(
    previous_phase: Phase | None, moves_traffic: bool, held: bool
) -> None:
    previous = LLMDeploymentStatus(phase=previous_phase, weights={"v1": 80, "v2": 20})
    decided = previous.model_copy(
        update={
            "weights": {"v1": 50, "v2": 50} if moves_traffic else previous.weights,
            "step": 1,
            "observed_generation": 3,
        }
    )
    outcome = rollout.Outcome(decided, [rollout.Event("Normal", "StepAdvanced", "v2 to 50%")])
    failure = reconciler._NotRoutedError("ServiceNotFound", "Service bot-v2 not found")
    result, stands = reconciler._not_routed(previous, outcome, failure, NOW)
    assert stands is not held
    assert result.status.step == (0 if held else 1)
    assert [e.reason for e in result.events] == (
        ["TrafficNotRouted"] if held else ["StepAdvanced", "TrafficNotRouted"]
    )
    condition = result.status.condition("TrafficRouted")
    assert condition is not None
    assert (condition.status, condition.reason, condition.observed_generation) == (
        "False",
        "ServiceNotFound",
        3,
    )


def test_a_failure_already_said_posts_no_second_event() -> None:
    previous = LLMDeploymentStatus(
        phase=Phase.IDLE,
        weights={"v1": 100},
        conditions=with_condition([], "TrafficRouted", "False", "ServiceNotFound", "gone", NOW, 1),
    )
    failure = reconciler._NotRoutedError("ServiceNotFound", "gone")
    result, _ = reconciler._not_routed(previous, rollout.Outcome(previous, []), failure, NOW)
    assert result.events == []


def test_an_analysis_block_keeps_its_decision_state_when_cut() -> None:
    sequential = {"tests": {"errorRate": {"log_lr": 1.5}}}
    huge = {
        "method": "sequential",
        "verdict": "inconclusive",
        "sequential": sequential,
        "results": [{"message": "m" * 5000} for _ in range(100)],
    }
    bounded = reconciler.bounded_analysis(huge)
    assert bounded["sequential"] == sequential and bounded["method"] == "sequential"
    assert "dropped" in bounded["reason"] and "results" not in bounded
    small = reconciler.bounded_analysis({"results": [{"message": "m" * 5000}]})
    assert len(small["results"][0]["message"]) == MAX_MESSAGE


@pytest.mark.parametrize(
    ("spec", "seconds"),
    [
        ({"strategy": {"interval": "30s"}}, 30.0),
        ({"strategy": {"interval": "1m30s"}}, 90.0),
        ({}, 60.0),
        ({"strategy": {"interval": "soon"}}, 60.0),
        ({"strategy": None}, 60.0),
    ],
)
def test_interval_seconds(spec: dict[str, Any], seconds: float) -> None:
    assert reconciler.interval_seconds(spec) == seconds


def test_the_status_body_has_no_nulls() -> None:
    body = reconciler.status_body(LLMDeploymentStatus(phase=Phase.IDLE, weights={"v1": 100}))
    assert body["phase"] == "Idle" and None not in body.values()


@pytest.mark.parametrize(
    ("address", "allowlist", "allowed"),
    [
        ("http://prometheus.monitoring:9090", [], True),  # no list: every host
        ("http://prometheus.monitoring:9090", ["prometheus.monitoring"], True),
        ("http://prometheus.monitoring:9090", ["prometheus.monitoring:9090"], True),
        ("http://prometheus.monitoring:9090", ["prometheus.monitoring:9091"], False),
        ("http://PROMETHEUS.monitoring.svc.:9090", ["*.monitoring.svc"], True),
        ("http://evil-monitoring.svc:9090", ["*.monitoring.svc"], False),
        ("https://thanos.example.com", ["thanos.example.com:443"], True),
        ("http://thanos.example.com", ["thanos.example.com:443"], False),
        ("http://169.254.169.254/latest", ["prometheus.monitoring"], False),
        ("http://[::1]:9090", ["prometheus.monitoring"], False),
        ("not a url", ["prometheus.monitoring"], False),
    ],
)
def test_prometheus_allowed(address: str, allowlist: list[str], allowed: bool) -> None:
    assert reconciler.prometheus_allowed(address, allowlist) is allowed


def test_a_host_outside_the_allowlist_is_never_asked() -> None:
    asked: list[str] = []

    class Recording(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(500)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spec = LLMDeploymentSpec.model_validate(
            {
                "variants": [
                    {"name": "v1", "model": "m", "backendRef": {"name": "a", "port": 80}},
                    {"name": "v2", "model": "m", "backendRef": {"name": "b", "port": 80}},
                ],
                "stable": "v1",
                "candidate": "v2",
                "traffic": {"router": "none"},
                "metrics": {"prometheus": {"address": f"http://127.0.0.1:{server.server_address[1]}"}},
            }
        )
        started = rollout.reconcile(spec, LLMDeploymentStatus(), 1, NOW).status
        later = NOW + timedelta(minutes=5)
        with httpx.Client() as http:
            clients = reconciler.Clients(None, http, ("prometheus.monitoring",))
            observation = reconciler._observe(clients, spec, started, "team-a", later)
    finally:
        server.shutdown()
        server.server_close()
    assert observation is not None and observation.window is None
    assert observation.unavailable == (
        "Prometheus host 127.0.0.1 is not in this operator's allowlist (prometheus.monitoring);"
        " ask its administrators to add it"
    )
    assert asked == []


def test_metrics_labels_naming_the_variant_label_are_an_invalid_spec() -> None:
    raw = {
        "variants": [{"name": "v1", "model": "m", "backendRef": {"name": "a", "port": 80}}],
        "stable": "v1",
        "traffic": {"router": "none"},
        "metrics": {"prometheus": {"address": "http://p:9090"}, "labels": {"variant": "x"}},
    }
    with (
        httpx.Client() as http,
        pytest.raises(reconciler.InvalidSpecError, match=r"^spec\.metrics: .*variant"),
    ):
        reconciler.checked_spec(raw, http, "team-a")


def test_a_checked_spec_is_kept_per_content_and_namespace_and_a_refusal_too() -> None:
    raw: dict[str, Any] = {
        "variants": [{"name": "v1", "model": "m", "backendRef": {"name": "a", "port": 80}}],
        "stable": "v1",
        "traffic": {"router": "none"},
        "metrics": {"prometheus": {"address": "http://p:9090"}},
    }
    cache = reconciler._SpecCache(size=2)
    with httpx.Client() as http:
        first = cache.get(raw, http, "team-a")
        assert cache.get(dict(raw), http, "team-a") is first  # equal content, another dict
        assert cache.get(raw, http, "team-b") is not first
        changed = cache.get({**raw, "paused": True}, http, "team-a")
        assert changed.paused and not first.paused
        assert cache.get(raw, http, "team-a") is not first  # evicted: only 2 are kept
        refused = {**raw, "metrics": {**raw["metrics"], "labels": {"variant": "x"}}}
        for _ in range(2):
            with pytest.raises(reconciler.InvalidSpecError, match=r"^spec\.metrics: .*variant"):
                cache.get(refused, http, "team-a")


def _spec(metrics: dict[str, Any]) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate(
        {
            "variants": [
                {"name": "v1", "model": "m", "backendRef": {"name": "a", "port": 80}},
                {"name": "v2", "model": "m", "backendRef": {"name": "b", "port": 80}},
            ],
            "stable": "v1",
            "traffic": {"router": "none"},
            "metrics": metrics,
        }
    )


def test_reads_of_one_group_share_a_batch_and_credentials_or_resource_variants_read_alone() -> None:
    end = NOW + timedelta(seconds=30)
    plain = {"prometheus": {"address": "http://p:9090"}, "labels": {"team": "a"}}
    other_team = {"prometheus": {"address": "http://p:9090"}, "labels": {"team": "b"}}
    other_keys = {"prometheus": {"address": "http://p:9090"}, "labels": {"app": "a"}}
    auth = {
        "prometheus": {
            "address": "http://p:9090",
            "auth": {"bearerTokenSecretRef": {"name": "s", "key": "t"}},
        },
        "labels": {"team": "a"},
    }
    resource = {"prometheus": {"address": "http://p:9090"}, "variantFrom": "resource"}
    with httpx.Client() as http:

        def batched(metrics: dict[str, Any], ns: str = "team-a") -> Any:
            return reconciler.batched_read(http, _spec(metrics), ns, ["v1", "v2"], NOW, end)

        first, second, third = batched(plain), batched(other_team, "team-b"), batched(other_keys)
        assert first is not None and second is not None and third is not None
        assert first.group == second.group != third.group
        assert first.member.member.variants == ("v1", "v2") and first.member.end == end
        assert batched(auth) is None
        assert batched(resource) is None
        assert reconciler.batched_read(http, _spec(plain), "team-a", ["v1"], end, NOW) is None


@pytest.mark.parametrize(
    ("interval", "deadline"),
    [("4s", 10.0), ("10s", 10.0), ("15s", 15.0), ("30s", 30.0), ("1m", 30.0), ("10m", 30.0)],
)
def test_the_check_before_a_rollout_waits_an_interval_in_10_to_30s(interval: str, deadline: float) -> None:
    raw = _spec({"prometheus": {"address": "http://p:9090"}}).model_dump(by_alias=True, mode="json")
    raw.setdefault("strategy", {})["interval"] = interval
    assert reconciler.preflight_deadline(LLMDeploymentSpec.model_validate(raw)) == deadline
