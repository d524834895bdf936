"""A vLLM-compatible metrics exporter: vLLM's own names and labels, through prometheus_client.

Names, labels and buckets are those of vLLM's `PrometheusStatLogger` (vllm/v1/metrics/loggers.py,
vLLM v0.10, commit 005a810): every series carries `model_name` (--served-model-name) and `engine`;
`vllm:request_success` is a counter with `finished_reason` in stop/length/abort (and error in later
versions), each created at start. vLLM has no failure counter: failed requests show only in the HTTP
server's `http_requests_total{handler,method,status}` (prometheus-fastapi-instrumentator, status grouped
as "2xx"/"5xx"), which carries no model_name. Served like vLLM serves them, so the real Prometheus
stores them under whatever names its scrape negotiates (`vllm:` or `vllm_`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

FINISHED_REASONS = ("stop", "length", "abort", "error")
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
# build_1_2_5_buckets(max_model_len) for a 32k context: vLLM's request_prompt_tokens and
# request_generation_tokens histograms.
TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
CHAT = "/v1/chat/completions"


@dataclass
class VLLMTruth:
    """What the exporter was told, per finished_reason and HTTP status group."""

    finished: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINISHED_REASONS, 0))
    http: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    generation_tokens: int = 0
    ttfts: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


class VLLMMetrics:
    """vLLM's series for one served model, in `registry` (a model server's, or an exporter's own)."""

    def __init__(self, registry: CollectorRegistry, model_name: str, engine: str = "0") -> None:
        self.model_name, self.engine = model_name, engine
        labels = ["model_name", "engine"]
        r = registry
        self.success = Counter("vllm:request_success", "", [*labels, "finished_reason"], registry=r)
        self.prompt = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=r)
        self.generation = Counter("vllm:generation_tokens", "", labels, registry=r)
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds", "", labels, buckets=TTFT_BUCKETS, registry=r
        )
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "", labels, buckets=E2E_BUCKETS, registry=r)
        self.prompt_per_request = Histogram(
            "vllm:request_prompt_tokens", "", labels, buckets=TOKEN_BUCKETS, registry=r
        )
        self.generation_per_request = Histogram(
            "vllm:request_generation_tokens", "", labels, buckets=TOKEN_BUCKETS, registry=r
        )
        self.http = Counter("http_requests", "", ["handler", "method", "status"], registry=r)
        for reason in FINISHED_REASONS:
            self.success.labels(model_name, engine, reason)
        for metric in (
            self.prompt,
            self.generation,
            self.ttft,
            self.e2e,
            self.prompt_per_request,
            self.generation_per_request,
        ):
            metric.labels(model_name, engine)
        self.truth = VLLMTruth()
        self._lock = threading.Lock()

    def finish(self, ttft: float, latency: float, prompt: int, generated: int, reason: str = "stop") -> None:
        """A request the engine finished (stop/length: a success; abort: the client went away)."""
        m, e = self.model_name, self.engine
        with self._lock:
            self.success.labels(m, e, reason).inc()
            self.truth.finished[reason] += 1
            self.prompt.labels(m, e).inc(prompt)
            self.generation.labels(m, e).inc(generated)
            self.truth.prompt_tokens += prompt
            self.truth.generation_tokens += generated
            self.ttft.labels(m, e).observe(ttft)
            self.e2e.labels(m, e).observe(latency)
            self.prompt_per_request.labels(m, e).observe(prompt)
            self.generation_per_request.labels(m, e).observe(generated)
            self.truth.ttfts.append(ttft)
            self.truth.latencies.append(latency)
            # An aborted request's client is gone; an engine error is a server error to the client.
            status = {"abort": None, "error": "5xx"}.get(reason, "2xx")
            if status is not None:
                self.http.labels(CHAT, "POST", status).inc()
                self.truth.http[status] = self.truth.http.get(status, 0) + 1

    def fail(self, status: str = "5xx") -> None:
        """A request that failed before the engine finished it: only the HTTP metrics see it."""
        with self._lock:
            self.http.labels(CHAT, "POST", status).inc()
            self.truth.http[status] = self.truth.http.get(status, 0) + 1


class VLLMExporter(VLLMMetrics):
    """One vLLM server's /metrics for `model_name`, on a loopback port."""

    def __init__(self, model_name: str, engine: str = "0", host: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry()
        super().__init__(self.registry, model_name, engine)
        self.server, self.thread = start_http_server(0, addr=host, registry=self.registry)
        self.target = f"{host}:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
