"""A rollout scenario on the real cluster and Prometheus: Services, an HTTPRoute, simulated model
servers, traffic that follows the route, and an LLMDeployment over them.

`concurrent_rollouts` and `decide_concurrently` run several such scenarios at once, each in a namespace
of its own, so that slow conditions cost a test the time of its slowest scenario, not their sum.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.cluster import Kube, wait_for
from tests.e2e.harness.fixtures import ModelServers, ServerSpec, Traffic
from tests.e2e.harness.judge import JudgeProcess
from tests.e2e.harness.modelserver import Behaviour, ModelServer
from tests.e2e.harness.prometheus import PrometheusServer
from tests.e2e.harness.traffic import JudgeFeed, TrafficGenerator

NAME = "bot"
PORT = 8000
INTERVAL_SECONDS = 4.0
STEPS = [20, 50, 100]
# Simulated defaults: input 200 and output 150 tokens -> 5e-5 USD a request at these prices.
PRICING = {"inputPerMillionTokens": 0.10, "outputPerMillionTokens": 0.20}
SLOS: dict[str, Any] = {
    "errorRate": {"max": 0.05},
    "ttft": {"p95": "800ms"},
    "quality": {"minScore": 0.7, "maxDropVsStable": 0.1},
    "costPerRequest": {"maxUSD": 0.0001},
}


def slos_for(method: str) -> dict[str, Any]:
    slos = dict(SLOS)
    if method == "sequential":
        # Proving a drop of at most 0.1 from bounded scores alone takes ~500 judged answers per version,
        # minutes at this test's 40 requests/s; 0.2 is provable within the test's budget.
        slos["quality"] = {"minScore": 0.7, "maxDropVsStable": 0.2}
    return slos


def llmdeployment(
    namespace: str,
    prometheus: str,
    *,
    candidate: str | None = "v2",
    steps: list[int] | None = None,
    slos: dict[str, Any] | None = None,
    method: str = "threshold",
    min_requests: int = 20,
    inconclusive_limit: int = 5,
    variants: tuple[str, ...] = ("v1", "v2"),
    fallbacks: list[str] | None = None,
    interval: str = f"{INTERVAL_SECONDS:g}s",
    scrape_interval: str | None = None,
    max_duration: str | None = None,
    endpoints: dict[str, str] | None = None,
    evaluation: dict[str, Any] | None = None,
    auth: dict[str, Any] | None = None,
    fallback_policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "variants": [
            {
                "name": v,
                "model": f"model-{v}",
                "backendRef": {"name": f"bot-{v}", "port": PORT},
                "pricing": PRICING,
                **({"endpoint": endpoints[v]} if endpoints and v in endpoints else {}),
            }
            for v in variants
        ],
        "stable": "v1",
        "traffic": {"router": "gatewayAPI", "httpRouteRef": {"name": NAME}},
        "strategy": {
            "steps": steps or STEPS,
            "interval": interval,
            "minRequests": min_requests,
            **({"maxDuration": max_duration} if max_duration else {}),
        },
        "metrics": {
            "prometheus": {
                "address": prometheus,
                **({"scrapeInterval": scrape_interval} if scrape_interval else {}),
                **({"auth": auth} if auth else {}),
            },
            "preset": "openTelemetryGenAI",
            "variantLabel": "variant",
            "labels": {"namespace": namespace},
        },
        "slos": slos if slos is not None else SLOS,
        "analysis": {"method": method, "inconclusiveLimit": inconclusive_limit},
    }
    if candidate:
        spec["candidate"] = candidate
    if fallbacks:
        spec["fallbacks"] = fallbacks
    if fallback_policy:
        spec["fallbackPolicy"] = fallback_policy
    if evaluation:
        spec["evaluation"] = evaluation
    return {
        "apiVersion": "llmrollout.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": NAME},
        "spec": spec,
    }


def services_and_route(namespace: str, variants: tuple[str, ...] = ("v1", "v2")) -> list[dict[str, Any]]:
    services = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"bot-{v}"},
            "spec": {"selector": {"app": f"bot-{v}"}, "ports": [{"port": PORT}]},
        }
        for v in variants
    ]
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": NAME},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                    "backendRefs": [{"name": "bot-v1", "port": PORT, "weight": 1}],
                }
            ],
        },
    }
    return [*services, route]


@dataclass
class Rollout:
    kube: Kube
    namespace: str
    servers: dict[str, ModelServer]
    generator: TrafficGenerator
    manifest: dict[str, Any]
    seen_weights: list[int] = field(default_factory=list)
    described_plan: str = ""  # `kubectl describe` as it showed the plan, for tests that look for it
    judge: JudgeProcess | None = None  # the online evaluator, when the servers export no eval metrics
    _watching: threading.Event = field(default_factory=threading.Event)
    _watched: str = "v2"
    _watcher: threading.Thread | None = None
    _objects: Any = None  # a CustomObjectsApi for status(), made on first use

    @property
    def candidate_server(self) -> ModelServer:
        return self.servers["bot-v2"]

    def share(self, variant: str) -> int:
        """The variant's percent of the HTTPRoute's weight."""
        weights = self.route_weights()
        total = sum(weights.values())
        return round(100 * weights.get(f"bot-{variant}", 0) / total) if total else 0

    def status(self) -> dict[str, Any]:
        # Through the API client, not a kubectl process: wait_step polls for a step that lasts one
        # interval (4 s), and on a loaded machine (two xdist workers, each with its own cluster) a
        # kubectl start-up per poll took long enough to miss it.
        if self._objects is None:
            self._objects = client.CustomObjectsApi(self.kube.api_client())
        found = self._objects.get_namespaced_custom_object(
            "llmrollout.io", "v1alpha1", self.namespace, "llmdeployments", NAME
        )
        status: dict[str, Any] = found.get("status", {})
        return status

    def route_weights(self) -> dict[str, int]:
        route = self.kube.get("httproute", NAME, self.namespace)
        refs = route["spec"]["rules"][0]["backendRefs"]
        return {ref["name"]: int(ref.get("weight", 1)) for ref in refs}

    def candidate_share(self) -> int:
        return self.share("v2")

    def wait_phase(self, phase: str, timeout: float) -> dict[str, Any]:
        try:
            status: dict[str, Any] = wait_for(
                lambda: (s := self.status()).get("phase") == phase and s, timeout, f"phase {phase}"
            )
        except AssertionError as error:
            raise AssertionError(f"{error}\nstatus: {self.explain()}") from None
        return status

    def wait_phase_in(self, phases: tuple[str, ...], timeout: float) -> dict[str, Any]:
        try:
            status: dict[str, Any] = wait_for(
                lambda: (s := self.status()).get("phase") in phases and s, timeout, f"phase in {phases}"
            )
        except AssertionError as error:
            raise AssertionError(f"{error}\nstatus: {self.explain()}") from None
        return status

    def explain(self) -> str:
        status = self.status()
        conditions = {
            c["type"]: f"{c['reason']}: {c.get('message', '')}" for c in status.get("conditions", [])
        }
        history = [f"{h['reason']}: {h['message']}" for h in status.get("history", [])[-5:]]
        results = [r["message"] for r in status.get("analysis", {}).get("results", [])]
        return f"phase={status.get('phase')} conditions={conditions} results={results} history={history}"

    def wait_step(self, weight: int, timeout: float) -> dict[str, Any]:
        status: dict[str, Any] = wait_for(
            lambda: (
                (s := self.status()).get("candidateWeight") == weight
                and s.get("phase") == "Progressing"
                and s
            ),
            timeout,
            f"candidate at {weight}%",
        )
        return status

    def events(self) -> list[dict[str, Any]]:
        listing = self.kube.kubectl(
            "get",
            "events",
            "-n",
            self.namespace,
            "--field-selector",
            f"involvedObject.name={NAME}",
            "-o",
            "json",
        )
        items: list[dict[str, Any]] = json.loads(listing.stdout)["items"]
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def event_messages(self, reason: str) -> list[str]:
        return [e["message"] for e in self.events() if e["reason"] == reason]

    def watch_route(self) -> None:
        """Record every distinct candidate share the HTTPRoute carries, in order."""
        self.watch_route_of("v2")

    def watch_route_of(self, variant: str) -> None:
        """Record every distinct share of `variant` that the HTTPRoute carries, in order."""
        self.seen_weights.clear()
        self._watching.clear()
        self._watched = variant
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._watching.is_set():
            self._record_share()
            time.sleep(0.2)

    def _record_share(self) -> None:
        share = self.share(self._watched)
        if not self.seen_weights or self.seen_weights[-1] != share:
            self.seen_weights.append(share)

    def stop_watching(self) -> None:
        """Stop, after one last look so that the final weights are never missed."""
        self._watching.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self._record_share()

    def apply(self, manifest: dict[str, Any]) -> None:
        self.manifest = manifest
        result = self.kube.apply(manifest, self.namespace)
        assert result.returncode == 0, result.stderr


def start_rollout(
    kube: Kube,
    namespace: str,
    prometheus: PrometheusServer,
    model_servers: ModelServers,
    traffic: Traffic,
    *,
    candidate_behaviour: Behaviour | None = None,
    rate: float = 40.0,
    variants: tuple[str, ...] = ("v1", "v2"),
    traffic_seconds: float = 600,
    judge: bool = False,
    posted: float = 0.5,
    judge_sample_rate: float = 0.5,
    **llmd: Any,
) -> Rollout:
    """With `judge`, the model servers export no eval metrics: a real `llmrollout judge` scores a
    sample of the traffic, and users' thumbs reach it too (harness/judge.py, traffic.JudgeFeed). The
    application posts a `posted` share of its exchanges to the judge, which scores `judge_sample_rate`
    of those."""
    behaviours = {"v2": candidate_behaviour or Behaviour()}
    servers = model_servers(
        namespace,
        {
            f"bot-{v}": ServerSpec(
                v,
                model=f"model-{v}",
                behaviour=behaviours.get(v, Behaviour()),
                seed=i,
                eval_metrics=not judge,
            )
            for i, v in enumerate(variants, start=1)
        },
    )
    feed = None
    process: JudgeProcess | None = None
    if judge:
        # Before the rollout: its preflight needs stable's eval (and feedback) series in Prometheus.
        process = model_servers.judge(namespace, variants, sample_rate=judge_sample_rate)
        feed = JudgeFeed(process.url, {f"bot-{v}": v for v in variants}, sample=posted, seed=4)
    for manifest in services_and_route(namespace, variants):
        result = kube.apply(manifest, namespace)
        assert result.returncode == 0, result.stderr
    generator = traffic(
        namespace, NAME, rate=rate, duration=traffic_seconds, max_requests=10**6, seed=3, judge=feed
    )
    # The spec says how often this Prometheus scrapes, as users are told to (it sizes the warm-up).
    llmd.setdefault("scrape_interval", f"{prometheus.scrape_interval:g}s")
    manifest = llmdeployment(namespace, prometheus.address, variants=variants, **llmd)
    rollout = Rollout(kube, namespace, servers, generator, manifest, judge=process)
    rollout.apply(manifest)
    return rollout


@dataclass(frozen=True)
class Case:
    """One of several scenarios run at once."""

    name: str
    behaviour: Behaviour  # the candidate's
    expect: str  # the phase it must end in ("": either decision)
    slo: str | None = None  # the SLO a rollback must name
    judge: bool = False  # quality and feedback from a real `llmrollout judge`, not the model servers
    max_duration: str | None = None


# Starts one case's rollout: (case, its namespace, its model servers, its traffic factory) -> Rollout.
Starter = Callable[[Case, str, ModelServers, Traffic], Rollout]


@contextmanager
def concurrent_rollouts(
    kube: Kube,
    prometheus: PrometheusServer,
    request: pytest.FixtureRequest,
    cases: Sequence[Case],
    start: Starter,
    *,
    prefix: str,
    workdir: Path | None = None,
) -> Iterator[dict[str, Rollout]]:
    """Each case started in a namespace of its own (`<prefix>-<case>-<random>`), with its own model
    servers, judge and traffic (they are named per rollout: bot-v1, bot-v2, judge); yields
    {case name: Rollout} and stops them all, and deletes the namespaces, at exit. The cases start at
    once too: each waits for Prometheus's first scrape of its servers, up to a scrape interval."""
    namespaces = {case.name: f"{prefix}-{case.name}-{uuid.uuid4().hex[:6]}" for case in cases}
    servers = {case.name: ModelServers(prometheus, workdir) for case in cases}
    traffic = {case.name: Traffic(request, servers[case.name]) for case in cases}
    try:
        for namespace in namespaces.values():
            kube.kubectl("create", "namespace", namespace)
        with ThreadPoolExecutor(len(cases)) as pool:
            started = pool.map(
                lambda c: start(c, namespaces[c.name], servers[c.name], traffic[c.name]), cases
            )
            rollouts = dict(zip((case.name for case in cases), started, strict=True))
        yield rollouts
    finally:
        for case in cases:
            traffic[case.name].close()
            servers[case.name].close()
        for namespace in namespaces.values():
            kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def decide_concurrently(
    cases: Sequence[Case],
    rollouts: Mapping[str, Rollout],
    decide: Callable[[Case, Rollout], dict[str, Any]],
) -> list[tuple[Case, dict[str, Any], float]]:
    """`decide(case, rollout)` (which waits for the rollout's end and returns its status) for every case
    at once; returns (case, status, seconds it took) in the cases' order."""

    def timed(case: Case) -> tuple[Case, dict[str, Any], float]:
        started = time.monotonic()
        status = decide(case, rollouts[case.name])
        return case, status, time.monotonic() - started

    with ThreadPoolExecutor(len(cases)) as pool:
        return list(pool.map(timed, cases))


def eval_sources(prometheus: PrometheusServer, namespace: str) -> dict[str, set[str]]:
    """Which scrape targets (by their service label) the namespace's eval and feedback series come from."""
    sources: dict[str, set[str]] = {}
    for metric in ("llm_eval_score_count", "llm_eval_results_total", "llm_feedback_total"):
        found = prometheus.query(f'count by (service) ({metric}{{namespace="{namespace}"}})')
        sources[metric] = {sample.labels.get("service", "") for sample in found}
    return sources


def assert_judged(rollout: Rollout, prometheus: PrometheusServer) -> None:
    """The eval and feedback series the operator read came from the rollout's judge, which scored and
    counted the candidate's answers, and not from the model servers."""
    assert rollout.judge is not None
    assert eval_sources(prometheus, rollout.namespace) == {
        "llm_eval_score_count": {"judge"},
        "llm_eval_results_total": {"judge"},
        "llm_feedback_total": {"judge"},
    }
    assert not any(server.sample("llm_eval_score_count") for server in rollout.servers.values())
    sent = rollout.generator.stats()
    assert sent.judge_errors == 0 and sent.judged.get("bot-v2", 0) > 0, sent
    assert rollout.judge.sample("llm_eval_score_count", variant="v2") > 0
    assert rollout.judge.sample("llm_feedback_total", variant="v2") > 0
