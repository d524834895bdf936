"""`make demo`: two rollouts on the local cluster, narrated as they happen.

1. A healthy candidate (v2) goes 10% -> 30% -> 60% -> 100% and is promoted; the operator first says how
   long each SLO's decision should take at this traffic (the plan).
2. A second candidate (v3) starts well; its time to first token then regresses mid-rollout, and the
   operator rolls it back to 0% with the reason in an Event.

Real parts: the kwok cluster, the operator process, Prometheus (Debian's package) and the HTTPRoute.
Stand-ins for what cannot run here: simulated OpenAI-compatible model servers exporting real
OpenTelemetry GenAI metrics, and a traffic generator that splits requests by the HTTPRoute's weights.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import config  # noqa: E402

from tests.e2e.harness.modelserver import Behaviour, ModelServer  # noqa: E402
from tests.e2e.harness.prometheus import PrometheusServer  # noqa: E402
from tests.e2e.harness.traffic import HTTPRouteWeights, TrafficGenerator  # noqa: E402

NAMESPACE = os.environ.get("DEMO_NAMESPACE", "llmrollout-demo")
NAME = "support-bot"
# The shortest interval the CRD accepts; everything else is what a user gets by default (the sequential
# method, its error rates, a 1h horizon).
INTERVAL = "10s"
KUBECONFIG = os.environ["KUBECONFIG"]
KUBECTL = os.environ.get("KUBECTL", "kubectl")


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def kubectl(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", KUBECONFIG, *args], input=stdin, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def apply(obj: dict[str, Any]) -> None:
    kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(obj))


def service(variant: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"bot-{variant}"},
        "spec": {"selector": {"app": f"bot-{variant}"}, "ports": [{"port": 8000}]},
    }


def llmdeployment(stable: str, candidate: str, address: str) -> dict[str, Any]:
    return {
        "apiVersion": "llmrollout.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "variants": [
                {
                    "name": v,
                    "model": f"llama-{v}",
                    "backendRef": {"name": f"bot-{v}", "port": 8000},
                    "pricing": {"inputPerMillionTokens": 0.10, "outputPerMillionTokens": 0.20},
                }
                for v in ("v1", "v2", "v3")
            ],
            "stable": stable,
            "candidate": candidate,
            "traffic": {"router": "gatewayAPI", "httpRouteRef": {"name": NAME}},
            "strategy": {"steps": [10, 30, 60, 100], "interval": INTERVAL, "minRequests": 20},
            "metrics": {
                # The demo's Prometheus scrapes every second (the default assumes a minute).
                "prometheus": {"address": address, "scrapeInterval": "1s"},
                "preset": "openTelemetryGenAI",
                "labels": {"namespace": NAMESPACE},
            },
            "slos": {
                "ttft": {"p95": "800ms"},
                "errorRate": {"max": 0.05},
                "quality": {"minScore": 0.7, "maxDropVsStable": 0.1},
                "costPerRequest": {"maxUSD": 0.0001},
            },
        },
    }


def status() -> dict[str, Any]:
    obj = json.loads(kubectl("get", "llmd", NAME, "-n", NAMESPACE, "-o", "json"))
    result: dict[str, Any] = obj.get("status", {})
    return result


def narrate_until_decided(timeout: float, then: Any = None) -> dict[str, Any]:
    """Print every change of phase and weights and every new Event, until a promotion or rollback."""
    already = {f"{h['time']}{h['reason']}" for h in status().get("history", [])}
    last = ""
    planned = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = status()
        line = f"phase={current.get('phase')} step={current.get('step')} weights={current.get('weights')}"
        if line != last:
            print(f"  {time.strftime('%H:%M:%S')} {line}", flush=True)
            last = line
        plan = next((c for c in current.get("conditions", []) if c["type"] == "Planned"), None)
        # The previous rollout's plan says "decided" everywhere; this one's names requests to come.
        fresh = plan is not None and "canary requests" in plan.get("message", "")
        if plan is not None and fresh and not planned and plan.get("status") in ("True", "False"):
            planned = plan.get("message", "")
            print(f"  {time.strftime('%H:%M:%S')}   plan ({plan['reason']}): {planned}", flush=True)
        for entry in current.get("history", []):
            key = f"{entry['time']}{entry['reason']}"
            if key not in already:
                already.add(key)
                print(
                    f"  {time.strftime('%H:%M:%S')}   event {entry['reason']}: {entry['message']}", flush=True
                )
                if entry["reason"] in ("Promoted", "RolledBack"):
                    return current
        if then is not None and then(current):
            then = None
        time.sleep(0.5)
    raise SystemExit(f"no promotion or rollback within {timeout}s; status: {status()}")


def prepare_namespace(servers: dict[str, ModelServer], prometheus: PrometheusServer) -> None:
    say(f"Namespace {NAMESPACE}: Services bot-v1/v2/v3 and the HTTPRoute {NAME} (all traffic on bot-v1)")
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true")
    kubectl("create", "namespace", NAMESPACE)
    for v in servers:
        apply(service(v))
    apply(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": NAME},
            "spec": {
                "parentRefs": [{"name": "gateway"}],
                "rules": [{"backendRefs": [{"name": "bot-v1", "port": 8000, "weight": 1}]}],
            },
        }
    )
    print("  waiting for Prometheus to scrape the model servers ...", flush=True)
    prometheus.wait_for_targets({"namespace": NAMESPACE}, 3, timeout=30)


def show_result(generator: TrafficGenerator) -> None:
    say(f"kubectl get llmd -n {NAMESPACE}")
    print(kubectl("get", "llmd", "-n", NAMESPACE))
    say("The HTTPRoute's backendRefs now")
    route = json.loads(kubectl("get", "httproute", NAME, "-n", NAMESPACE, "-o", "json"))
    for ref in route["spec"]["rules"][0]["backendRefs"]:
        print(f"  {ref['name']}: weight {ref.get('weight', 1)}")
    say(f"kubectl describe llmd {NAME} (events)")
    described = kubectl("describe", "llmd", NAME, "-n", NAMESPACE)
    # The section's heading starts a line: the status above it has fields ending in "Events:" too.
    events = re.search(r"^Events:", described, re.MULTILINE)
    print(described[events.start() :] if events else described)
    sent = generator.stats()
    print(f"  requests sent: {sent.total_sent} ({dict(sent.sent)})")


def rollouts(servers: dict[str, ModelServer], prometheus: PrometheusServer) -> str:
    say("Rollout 1: v1 -> v2, a healthy candidate")
    apply(llmdeployment("v1", "v2", prometheus.address))
    done = narrate_until_decided(300)
    print(f"  result: {done['phase']}; stable is now {done['stable']}")

    say("Rollout 2: v2 -> v3; v3's time to first token will regress once it has 30%")

    def regress_at_30(current: dict[str, Any]) -> bool:
        if current.get("candidate") == "v3" and current.get("candidateWeight", 0) >= 30:
            servers["v3"].configure(ttft_median_s=1.2)
            print(f"  {time.strftime('%H:%M:%S')} !! injected: v3 TTFT median 0.15s -> 1.2s", flush=True)
            return True
        return False

    apply(llmdeployment("v2", "v3", prometheus.address))
    done = narrate_until_decided(300, then=regress_at_30)
    print(f"  result: {done['phase']}; stable is {done['stable']}; weights {done['weights']}")
    return str(done["phase"])


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="llmrollout-demo-"))
    say("Starting Prometheus (scrapes every second) and three simulated model servers")
    prometheus = PrometheusServer(workdir / "prometheus").start()
    servers = {
        v: ModelServer(f"bot-{v}", f"llama-{v}", Behaviour(), seed=i).start()
        for i, v in enumerate(("v1", "v2", "v3"))
    }
    for v, server in servers.items():
        prometheus.set_targets(f"bot-{v}", [server.address], {"namespace": NAMESPACE, "variant": v})
    print(f"  Prometheus {prometheus.address}; servers " + ", ".join(s.url for s in servers.values()))
    operator_log = workdir / "operator.log"
    say(f"Starting the operator (log: {operator_log})")
    operator = subprocess.Popen(
        [sys.executable, "-m", "llmrollout.cli", "run", "--namespace", NAMESPACE, "--standalone"],
        stdout=operator_log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "LLMROLLOUT_TICK_SECONDS": "0.5"},
    )
    generator: TrafficGenerator | None = None
    try:
        prepare_namespace(servers, prometheus)
        api = config.new_client_from_config(config_file=KUBECONFIG)
        backends = {f"bot-{v}": s.url for v, s in servers.items()}
        weights = HTTPRouteWeights(api, NAMESPACE, NAME)
        generator = TrafficGenerator(
            weights, backends, rate=40, duration=900, max_requests=10**6, seed=7
        ).start()
        print("  traffic: 40 requests/s, split by the HTTPRoute's weights")
        phase = rollouts(servers, prometheus)
        show_result(generator)
        return 0 if phase == "RolledBack" else 1
    finally:
        if generator is not None:
            generator.stop()
        operator.terminate()
        operator.wait(timeout=20)
        for server in servers.values():
            server.stop()
        prometheus.stop()


if __name__ == "__main__":
    sys.exit(main())
