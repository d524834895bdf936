"""The Prometheus provider against the real Prometheus (Debian's /usr/bin/prometheus).

A prometheus_client exporter started here serves OpenTelemetry-GenAI-named series for three variants,
one of them with a name built to break naive PromQL quoting; Prometheus scrapes it every second; the
provider must read back exactly what the test observed.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from llmrollout.analysis.observations import Histogram as WindowHistogram
from llmrollout.api.spec import CustomSLO
from llmrollout.metrics import PRESETS, MetricsUnavailableError
from llmrollout.metrics.prometheus import PrometheusProvider

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

LOOPBACK = "127.0.0.1"
JOB = "llmrollout-metrics-e2e"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
HOSTILE = 'x"} or vector(1) or {x="\\\n{{namespace}}'
LATENCY_BUCKETS = (0.5, 1.0, 2.0, 5.0)
TTFT_BUCKETS = (0.1, 0.25, 0.5, 1.0)
SCORE_BUCKETS = (0.25, 0.5, 0.75, 1.0)


def wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (httpx.HTTPError, KeyError, ValueError) as err:
            last = err
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class Prometheus:
    """One real Prometheus on a free loopback port, scraping `target` every second."""

    def __init__(self, workdir: Path, target: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.address = f"http://{LOOPBACK}:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.log = workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.address, timeout=5.0)

    def start(self) -> None:
        assert Path(PROMETHEUS).exists(), f"no Prometheus binary at {PROMETHEUS} (Debian package prometheus)"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={self.workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address={LOOPBACK}:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
            return self.http.get("/-/ready").status_code == 200

        wait(ready, 30, f"Prometheus ready on {self.address}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def value(self, query: str) -> float | None:
        body = self.http.get("/api/v1/query", params={"query": query}).json()
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None


@dataclass
class Observed:
    """What the test fed the exporter for one variant: the truth the provider must read back."""

    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    errors: int = 0
    input_tokens: float = 0
    output_tokens: float = 0
    scores: list[float] = field(default_factory=list)
    passed: int = 0
    failed: int = 0
    refusals: int = 0


def cumulative(values: list[float], bounds: tuple[float, ...]) -> WindowHistogram:
    return WindowHistogram(tuple((b, float(sum(v <= b for v in values))) for b in (*bounds, math.inf)))


class Exporter:
    """OpenTelemetry GenAI series as a real instrumented client would export them."""

    def __init__(self, variants: list[str], with_errors: set[str]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "",
            ["variant", "error_type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds", "", ["variant"], buckets=TTFT_BUCKETS, registry=r
        )
        self.tokens = Histogram("gen_ai_client_token_usage", "", ["variant", "gen_ai_token_type"], registry=r)
        self.score = Histogram("llm_eval_score", "", ["variant"], buckets=SCORE_BUCKETS, registry=r)
        self.results = Counter("llm_eval_results", "", ["variant", "result"], registry=r)
        self.refusals = Counter("refusals", "", ["variant"], registry=r)
        # Series exist at 0 before the first observation, as a real exporter should create them:
        # Prometheus cannot count the increase that brings a series into existence. Variants not in
        # `with_errors` never get an error series, as with a client that has not failed yet.
        for v in variants:
            self.duration.labels(v, "")
            if v in with_errors:
                self.duration.labels(v, "timeout")
            self.ttft.labels(v)
            self.tokens.labels(v, "input")
            self.tokens.labels(v, "output")
            self.score.labels(v)
            self.results.labels(v, "pass")
            self.results.labels(v, "fail")
            self.refusals.labels(v)
        self.observed = {v: Observed() for v in variants}
        self.server, self.thread = start_http_server(0, addr=LOOPBACK, registry=r)
        self.target = f"{LOOPBACK}:{self.server.server_port}"

    def serve(self, variant: str, requests: int, errors: int, refusals: int, seed: int) -> None:
        seen = self.observed[variant]
        for i in range(requests):
            k = i + seed
            failed = i < errors
            latency = (0.3, 0.7, 1.5, 3.0, 6.0)[k % 5]
            self.duration.labels(variant, "timeout" if failed else "").observe(latency)
            seen.latencies.append(latency)
            seen.errors += failed
            if failed:
                continue
            ttft = (0.05, 0.2, 0.3, 0.8, 1.2)[(k * 3) % 5]
            self.ttft.labels(variant).observe(ttft)
            seen.ttfts.append(ttft)
            self.tokens.labels(variant, "input").observe(100 + k)
            self.tokens.labels(variant, "output").observe(20 + 3 * k)
            seen.input_tokens += 100 + k
            seen.output_tokens += 20 + 3 * k
            score = (k % 10) / 10
            self.score.labels(variant).observe(score)
            seen.scores.append(score)
            verdict = "pass" if score >= 0.5 else "fail"
            self.results.labels(variant, verdict).inc()
            seen.passed += verdict == "pass"
            seen.failed += verdict == "fail"
        self.refusals.labels(variant).inc(refusals)
        seen.refusals += refusals

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def genai_exporter() -> Iterator[Exporter]:
    served = Exporter(["v1", "v2", HOSTILE], with_errors={"v2", HOSTILE})
    yield served
    served.close()


@pytest.fixture
def scraping_prometheus(genai_exporter: Exporter, tmp_path: Path) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path / "prometheus", genai_exporter.target)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.http.close()


REFUSAL_RATE = CustomSLO(
    name="refusal-rate",
    query='sum(increase(refusals_total{variant="{{variant}}"}[{{interval}}]))'
    ' / sum(increase(gen_ai_client_operation_duration_seconds_count{variant="{{variant}}"}[{{interval}}]))',
    max=0.1,
)
NAN = CustomSLO(name="nan", query='sum(refusals_total{variant="{{variant}}"}) * 0 / 0', max=1)
BROKEN = CustomSLO(name="broken", query='sum(refusals_total{variant="{{variant}}"}', max=1)


def scraped_after_traffic(prometheus: Prometheus, exporter: Exporter) -> float:
    """Waits until Prometheus holds the final counts, then returns that scrape's timestamp.

    A window that ends on that scrape holds every count, and the provider reads exact differences
    (no extrapolation), so its numbers must equal the observed ones.
    """
    total = sum(len(o.latencies) for o in exporter.observed.values())
    wait(
        lambda: (
            prometheus.value(f'sum(gen_ai_client_operation_duration_seconds_count{{job="{JOB}"}})') == total
        ),
        15,
        f"Prometheus to scrape all {total} requests",
    )
    end = prometheus.value(f'timestamp(up{{job="{JOB}"}})')
    assert end is not None
    return end


def test_provider_reads_what_was_served(scraping_prometheus: Prometheus, genai_exporter: Exporter) -> None:
    prometheus, exporter = scraping_prometheus, genai_exporter
    first_sample = time.time()
    wait(
        lambda: prometheus.value(f'count(llm_eval_results_total{{job="{JOB}"}})') == 6,
        15,
        "the first scrape of the zero-valued series",
    )
    exporter.serve("v1", requests=40, errors=0, refusals=2, seed=0)
    exporter.serve("v2", requests=30, errors=6, refusals=6, seed=3)
    exporter.serve(HOSTILE, requests=12, errors=3, refusals=0, seed=7)
    end = scraped_after_traffic(prometheus, exporter)
    start = end - math.ceil(end - first_sample + 1)

    with httpx.Client(timeout=10.0) as client:
        provider = PrometheusProvider(
            client, prometheus.address, PRESETS["openTelemetryGenAI"], namespace="ns"
        )
        window = provider.read(["v1", "v2", HOSTILE, "absent"], start, end, [REFUSAL_RATE, NAN, BROKEN])

    assert (window.start, window.end) == (start, end)
    for variant, seen in exporter.observed.items():
        got = window.variants[variant]
        requests = len(seen.latencies)
        assert got.variant == variant
        assert got.requests == requests, variant
        assert got.errors == seen.errors, variant
        assert got.latency == cumulative(seen.latencies, LATENCY_BUCKETS), variant
        assert got.ttft == cumulative(seen.ttfts, TTFT_BUCKETS), variant
        assert got.input_tokens == seen.input_tokens, variant
        assert got.output_tokens == seen.output_tokens, variant
        assert got.eval_score_count == len(seen.scores), variant
        assert got.eval_score_sum == pytest.approx(sum(seen.scores), abs=1e-9), variant
        assert got.eval_score == cumulative(seen.scores, SCORE_BUCKETS), variant
        assert (got.eval_passed, got.eval_failed) == (seen.passed, seen.failed), variant
        assert got.custom["refusal-rate"] == pytest.approx(seen.refusals / requests), variant
        assert got.custom["nan"] is None and got.custom["broken"] is None

    absent = window.variants["absent"]
    assert absent.requests is None and absent.errors is None and absent.latency is None
    assert absent.eval_passed is None and absent.input_tokens is None
    assert absent.custom == {"refusal-rate": None, "nan": None, "broken": None}

    # NaN and a syntax error are explained per variant; "absent" has no series, so its NaN query is
    # empty rather than NaN.
    nan_problems = [p for p in window.problems if " custom:nan: the value is NaN" in p]
    broken_problems = [
        p for p in window.problems if " custom:broken: Prometheus rejected the query: bad_data" in p
    ]
    assert len(nan_problems) == 3
    assert len(broken_problems) == 4
    assert len(window.problems) == 7


@pytest.mark.parametrize("preset", ["vllm", "litellm", "custom"])
def test_every_preset_query_is_valid_promql(scraping_prometheus: Prometheus, preset: str) -> None:
    prometheus = scraping_prometheus
    with httpx.Client(timeout=10.0) as client:
        provider = PrometheusProvider(
            client, prometheus.address, PRESETS[preset], namespace="ns", labels={"namespace": HOSTILE}
        )
        window = provider.read(["v1", HOSTILE], time.time() - 60, time.time(), [REFUSAL_RATE])
    # Syntax errors would be problems; the series of other servers are simply missing here.
    assert window.problems == ()
    for got in window.variants.values():
        assert got.requests is None and got.ttft is None and got.eval_score_sum is None
        assert got.custom == {"refusal-rate": None}


def test_a_stopped_prometheus_raises(scraping_prometheus: Prometheus) -> None:
    prometheus = scraping_prometheus
    with httpx.Client(timeout=5.0) as client:
        provider = PrometheusProvider(
            client, prometheus.address, PRESETS["openTelemetryGenAI"], namespace="ns"
        )
        wait(
            lambda: provider.read(["v1"], time.time() - 30, time.time()).variants["v1"].requests == 0,
            15,
            "a first successful read",
        )
        prometheus.stop()
        with pytest.raises(
            MetricsUnavailableError, match=f"{prometheus.address} is unreachable: ConnectError"
        ):
            provider.read(["v1"], time.time() - 30, time.time())
