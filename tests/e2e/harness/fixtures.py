"""pytest fixtures of the e2e harness; tests/e2e/conftest.py does `from tests.e2e.harness.fixtures import *`.

- `prometheus` (session): one real Prometheus for the whole session (`PrometheusServer`); tests keep
  apart by the `namespace` target label, never by restarting it.
- `prometheus_restored` (autouse): a test that stops Prometheus gets it started again afterwards, even
  when it fails, so later tests are not broken by an earlier one's outage.
- `model_servers` (function): a `ModelServers` factory; servers it starts are scraped with
  {namespace, variant, service} target labels and deregistered and stopped at teardown. Its
  `judge(namespace, variants)` starts a real `llmrollout judge` (harness/judge.py), scraped with
  {namespace, service: judge} (its series carry the variant themselves).
- `traffic` (function): a `Traffic` factory of `TrafficGenerator`s, by a real HTTPRoute (needs the
  conftest's `kube`) or by fixed weights; every generator is stopped at teardown.
- `gateway_api` (session): the Gateway API CRDs in the cluster, installed by hack/install-gateway-api.sh
  when missing.

Knobs (environment): LLMROLLOUT_PROMETHEUS (binary), LLMROLLOUT_E2E_SCRAPE_INTERVAL (seconds, default 1).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness.judge import JudgeProcess
from tests.e2e.harness.modelserver import Behaviour, ModelServer
from tests.e2e.harness.prometheus import JOB, PrometheusError, PrometheusServer
from tests.e2e.harness.traffic import HTTPRouteWeights, TrafficGenerator, WeightSource

__all__ = [
    "ModelServers",
    "ServerSpec",
    "Traffic",
    "gateway_api",
    "model_servers",
    "prometheus",
    "prometheus_restored",
    "traffic",
]

REPO = Path(__file__).resolve().parents[3]
HTTPROUTE_CRD = "httproutes.gateway.networking.k8s.io"


@dataclass(frozen=True)
class ServerSpec:
    """One model server to start: which variant it serves, its model name, how it behaves."""

    variant: str
    model: str | None = None  # the gen_ai_request_model label; "model-<variant>" when not given
    behaviour: Behaviour = field(default_factory=Behaviour)
    labels: Mapping[str, str] = field(default_factory=dict)  # more target labels, e.g. {"pod": ...}
    seed: int | None = None
    # "vllm" or "litellm": that source's names and labels as well (harness/*_exporter.py)
    telemetry: str = "otel"
    # False: no eval metrics of its own; a judge scores its answers (see ModelServers.judge).
    eval_metrics: bool = True


class ModelServers:
    """What the `model_servers` fixture yields.

    `model_servers(namespace, {"bot-v1": "v1", "bot-v2": ServerSpec("v2", behaviour=Behaviour(...))})`
    starts one server per Service name, registers each as a Prometheus target labelled
    {namespace, variant, service: <name>} and, with `wait=True`, returns once Prometheus has scraped
    all of them (4-5 s: Prometheus's discovery tick), so every series exists at 0 before traffic.
    """

    def __init__(self, prometheus: PrometheusServer, workdir: Path | None = None) -> None:
        self.prometheus = prometheus
        self.workdir = workdir
        self.servers: dict[str, ModelServer] = {}
        self.judges: dict[str, JudgeProcess] = {}
        self._groups: dict[str, tuple[str, str]] = {}  # name -> (group, namespace)

    def __call__(
        self,
        namespace: str,
        servers: Mapping[str, str | ServerSpec],
        *,
        wait: bool = True,
        timeout: float = 20.0,
    ) -> dict[str, ModelServer]:
        started: dict[str, ModelServer] = {}
        for name, spec in servers.items():
            if name in self.servers:
                raise ValueError(f"model server {name!r} already started in this test")
            if isinstance(spec, str):
                spec = ServerSpec(spec)  # noqa: PLW2901 - a bare variant name is shorthand
            server = ModelServer(
                name,
                spec.model or f"model-{spec.variant}",
                spec.behaviour,
                seed=spec.seed,
                telemetry=spec.telemetry,
                eval_metrics=spec.eval_metrics,
            )
            server.start()
            self.servers[name] = started[name] = server
            group = f"{namespace}.{name}"
            labels = {"namespace": namespace, "variant": spec.variant, "service": name, **spec.labels}
            self.prometheus.set_targets(group, [server.address], labels)
            self._groups[name] = (group, namespace)
        if wait:
            self.wait_scraped(list(started), timeout=timeout)
        return started

    def judge(
        self, namespace: str, variants: tuple[str, ...], *, name: str = "judge", **options: Any
    ) -> JudgeProcess:
        """A real `llmrollout judge` for `variants`, scraped with {namespace, service: <name>}; returns
        once Prometheus has scraped it. `options` go to JudgeProcess (sample_rate, workers, ...)."""
        if name in self._groups:
            raise ValueError(f"{name!r} already started in this test")
        workdir = self.workdir or Path(tempfile.mkdtemp(prefix="llmrollout-judge-"))
        judge = JudgeProcess(workdir / f"{namespace}-{name}.log", variants, **options).start()
        self.judges[name] = judge
        group = f"{namespace}.{name}"
        self.prometheus.set_targets(group, [judge.address], {"namespace": namespace, "service": name})
        self._groups[name] = (group, namespace)
        self.wait_scraped([name])
        return judge

    def __getitem__(self, name: str) -> ModelServer:
        return self.servers[name]

    def urls(self) -> dict[str, str]:
        """{Service name: base URL}, the `backends` of a TrafficGenerator."""
        return {name: server.url for name, server in self.servers.items()}

    def wait_scraped(self, names: list[str] | None = None, timeout: float = 20.0) -> None:
        """Wait until Prometheus holds an `up == 1` sample for each of `names` (default: all)."""
        # A new target's first scrape comes at an offset of up to one scrape interval.
        timeout = max(timeout, 2 * self.prometheus.scrape_interval + 5)
        wanted = {(self._groups[n][1], n) for n in (names if names is not None else list(self.servers))}
        deadline = time.monotonic() + timeout
        missing = wanted
        while True:
            try:
                up = {
                    (s.labels.get("namespace", ""), s.labels.get("service", ""))
                    for s in self.prometheus.query(f'up{{job="{JOB}"}} == 1')
                }
                missing = wanted - up
                if not missing:
                    return
            except (httpx.HTTPError, PrometheusError):
                pass
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        try:
            targets = self.prometheus.targets()
            seen = [(t["labels"].get("service"), t["health"], t["lastError"]) for t in targets]
        except (httpx.HTTPError, PrometheusError) as exc:
            seen = [("targets unreadable", str(exc), "")]
        raise AssertionError(
            f"Prometheus at {self.prometheus.address} did not scrape {sorted(missing)} within {timeout}s; "
            f"active targets: {seen}"
        )

    def stop(self, name: str) -> None:
        """Stop one server but keep it registered, as a crashed pod would be (Prometheus sees up == 0)."""
        self.servers[name].stop()

    def close(self) -> None:
        for name, server in self.servers.items():
            group, _ = self._groups[name]
            self.prometheus.remove_targets(group)
            server.stop()
        for name, judge in self.judges.items():
            group, _ = self._groups[name]
            self.prometheus.remove_targets(group)
            judge.stop()
        self.servers.clear()
        self.judges.clear()
        self._groups.clear()


class Traffic:
    """What the `traffic` fixture yields: `traffic(namespace, route)` or `traffic(weights={...})`.

    By route, the generator follows the real HTTPRoute `namespace/route` (re-read every 0.5 s). By
    `weights`, it splits by fixed weights (or any WeightSource, e.g. a FixedWeights changed mid-run).
    `backends` defaults to every server `model_servers` started in this test. Other keyword arguments
    go to TrafficGenerator (rate, max_requests, duration, concurrency, stream, seed, ...). The
    generator is started unless `start=False`; every generator is stopped at teardown.
    """

    def __init__(self, request: pytest.FixtureRequest, servers: ModelServers) -> None:
        self._request = request
        self._servers = servers
        self.generators: list[TrafficGenerator] = []
        self._api_clients: list[Any] = []

    def __call__(
        self,
        namespace: str | None = None,
        route: str | None = None,
        *,
        weights: Mapping[str, int] | WeightSource | None = None,
        backends: Mapping[str, str] | None = None,
        start: bool = True,
        **options: Any,
    ) -> TrafficGenerator:
        if (route is None) == (weights is None):
            raise ValueError("give either a route (with its namespace) or weights")
        source: WeightSource | Mapping[str, int]
        if route is not None:
            if namespace is None:
                raise ValueError("a route needs its namespace")
            api_client = self._request.getfixturevalue("kube").api_client()
            self._api_clients.append(api_client)
            source = HTTPRouteWeights(api_client, namespace, route)
        else:
            assert weights is not None
            source = weights
        urls = dict(backends) if backends is not None else self._servers.urls()
        generator = TrafficGenerator(source, urls, **options)
        self.generators.append(generator)
        if start:
            generator.start()
        return generator

    def close(self) -> None:
        for generator in self.generators:
            generator.stop()
        for api_client in self._api_clients:
            api_client.close()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    interval = float(os.environ.get("LLMROLLOUT_E2E_SCRAPE_INTERVAL", "1"))
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), scrape_interval=interval)
    try:
        server.start()
    except PrometheusError as exc:
        pytest.fail(f"the real Prometheus did not start: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def prometheus_restored(request: pytest.FixtureRequest) -> Iterator[None]:
    # Looked up before the test, not after: only tests that use Prometheus start it.
    server: PrometheusServer | None = None
    if "prometheus" in request.fixturenames:
        server = request.getfixturevalue("prometheus")
    yield
    if server is not None and not server.running:
        server.start()


@pytest.fixture
def model_servers(prometheus: PrometheusServer, tmp_path: Path) -> Iterator[ModelServers]:
    servers = ModelServers(prometheus, tmp_path)
    yield servers
    servers.close()


@pytest.fixture
def traffic(request: pytest.FixtureRequest, model_servers: ModelServers) -> Iterator[Traffic]:
    factory = Traffic(request, model_servers)
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def gateway_api(kube: Any) -> str:
    """The Gateway API CRDs in the cluster; yields the HTTPRoute CRD's served versions, e.g. "v1,v1beta1"."""
    found = kube.kubectl("get", "crd", HTTPROUTE_CRD, "-o", "jsonpath={.spec.versions[*].name}", check=False)
    if found.returncode != 0:
        env = {**os.environ, "KUBECONFIG": kube.kubeconfig}
        result = subprocess.run(
            ["bash", str(REPO / "hack" / "install-gateway-api.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(
                f"Gateway API CRDs are not in the cluster and hack/install-gateway-api.sh failed "
                f"({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}",
                pytrace=False,
            )
        found = kube.kubectl("get", "crd", HTTPROUTE_CRD, "-o", "jsonpath={.spec.versions[*].name}")
    return ",".join(found.stdout.split())
