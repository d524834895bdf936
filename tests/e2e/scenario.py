"""A rollout scenario on the real cluster and Prometheus: Services, an HTTPRoute, simulated model
servers, traffic that follows the route, and an LLMDeployment over them."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.cluster import Kube, wait_for
from tests.e2e.harness.fixtures import ModelServers, ServerSpec, Traffic
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
    _watching: threading.Event = field(default_factory=threading.Event)
    _watched: str = "v2"
    _watcher: threading.Thread | None = None

    @property
    def candidate_server(self) -> ModelServer:
        return self.servers["bot-v2"]

    def share(self, variant: str) -> int:
        """The variant's percent of the HTTPRoute's weight."""
        weights = self.route_weights()
        total = sum(weights.values())
        return round(100 * weights.get(f"bot-{variant}", 0) / total) if total else 0

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.kube.get("llmd", NAME, self.namespace).get("status", {})
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
    **llmd: Any,
) -> Rollout:
    """With `judge`, the model servers export no eval metrics: a real `llmrollout judge` scores a
    sample of the traffic, and users' thumbs reach it too (harness/judge.py, traffic.JudgeFeed)."""
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
    if judge:
        # Before the rollout: its preflight needs stable's eval (and feedback) series in Prometheus.
        process = model_servers.judge(namespace, variants)
        feed = JudgeFeed(process.url, {f"bot-{v}": v for v in variants}, seed=4)
    for manifest in services_and_route(namespace, variants):
        result = kube.apply(manifest, namespace)
        assert result.returncode == 0, result.stderr
    generator = traffic(
        namespace, NAME, rate=rate, duration=traffic_seconds, max_requests=10**6, seed=3, judge=feed
    )
    # The spec says how often this Prometheus scrapes, as users are told to (it sizes the warm-up).
    llmd.setdefault("scrape_interval", f"{prometheus.scrape_interval:g}s")
    manifest = llmdeployment(namespace, prometheus.address, variants=variants, **llmd)
    rollout = Rollout(kube, namespace, servers, generator, manifest)
    rollout.apply(manifest)
    return rollout
