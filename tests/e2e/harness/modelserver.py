"""Simulated OpenAI-compatible model servers with scripted latency, errors, token counts and quality.

A `ModelServer` is a real HTTP server on its own free 127.0.0.1 port (a thread in the test process):

- `POST /v1/chat/completions`: OpenAI's response shape with `usage`; `"stream": true` answers with
  server-sent events (a final usage chunk when `stream_options.include_usage` is set). Failures are
  HTTP `error_status` (500 by default) with an OpenAI-style error body.
- `GET /metrics`: the server's own `CollectorRegistry` in the Prometheus text format, with
  OpenTelemetry GenAI names as exported to Prometheus plus llmrollout's eval metrics (see `_Metrics`).
  With `eval_metrics=False` the server exports no eval metrics: a real `llmrollout judge` scores its
  answers instead (harness/judge.py). Each answer then ends with a marker of its scripted quality and
  of what its user thinks of it, `[sim quality=0.873 feedback=down]`, which the stand-in judge model
  grades by and the traffic generator reports as the user's thumbs up or down.
- `GET /control` shows the behaviour and counters; `PUT /control` with a JSON object of `Behaviour`
  fields changes the behaviour mid-test (`ModelServer.configure(...)` does the same from Python).
- `GET /v1/models`, `GET /health`.

The server does not export the variant or the namespace: Prometheus attaches them as target labels,
as Kubernetes service discovery relabelling would (see `prometheus.PrometheusServer.set_targets`).

Latency is simulated, not waited for: each request samples its TTFT and end-to-end latency from the
scripted distributions and records those values in the histograms, but sleeps only
`min(sample, sleep_cap_s)` (cap 0 by default), so a test can script a 5 s p95 and still send hundreds
of requests per second. Raise `sleep_cap_s` where wall-clock latency matters (e.g. timeouts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from tests.e2e.harness.litellm_exporter import LiteLLMMetrics
from tests.e2e.harness.vllm_exporter import VLLMMetrics

# Edges chosen so the SLOs used in tests (TTFT p95 0.3-1 s, latency p95 1-5 s) fall on a bucket edge:
# histogram_quantile interpolates inside a bucket, and a coarse bucket would blur the threshold.
TTFT_BUCKETS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.5, 2, 3, 5, 10)
DURATION_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60,
)  # fmt: skip
# OTel's advice for gen_ai.client.token.usage is powers of 4; the extra powers of 2 resolve the
# 64-2048 range that chat requests live in.
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536, 262144, 1048576, 4194304,
)  # fmt: skip
EVAL_SCORE_BUCKETS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 21))

OPERATION = "chat"


@dataclass(frozen=True)
class Behaviour:
    """What a server does; every field can be changed mid-test (`ModelServer.configure`, `PUT /control`).

    TTFT and latency are lognormal: `*_median_s` is the median in seconds and `*_sigma` the standard
    deviation of its logarithm, so p95 = median * exp(1.645 * sigma). The recorded end-to-end latency
    is never below the request's TTFT. Token counts are uniform integers in [mean - jitter, mean + jitter]
    (at least 1; output is also capped by the request's `max_tokens`). An `eval_sample_rate` share of the
    successful responses is judged: its score is Beta-distributed with mean `quality_mean` and standard
    deviation `quality_sd` (reduced where a Beta with that mean cannot have it), and passes when
    score >= `pass_threshold`. Without the server's own eval metrics, every answer has such a score,
    and users give a `thumbs_down_rate` share of the answers a thumbs-down (the rest a thumbs-up).
    """

    ttft_median_s: float = 0.15
    ttft_sigma: float = 0.3
    latency_median_s: float = 1.0
    latency_sigma: float = 0.3
    error_rate: float = 0.0
    error_status: int = 500
    input_tokens: float = 200.0
    input_tokens_jitter: float = 20.0
    output_tokens: float = 150.0
    output_tokens_jitter: float = 15.0
    quality_mean: float = 0.9
    quality_sd: float = 0.05
    pass_threshold: float = 0.7
    eval_sample_rate: float = 0.2
    thumbs_down_rate: float = 0.2
    sleep_cap_s: float = 0.0

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be {rule}, got {getattr(self, name)!r}"
            for name, rule, ok in (
                ("ttft_median_s", "> 0", self.ttft_median_s > 0),
                ("latency_median_s", "> 0", self.latency_median_s > 0),
                ("ttft_sigma", ">= 0", self.ttft_sigma >= 0),
                ("latency_sigma", ">= 0", self.latency_sigma >= 0),
                ("error_rate", "in [0, 1]", 0 <= self.error_rate <= 1),
                ("error_status", "an HTTP error status (400-599)", 400 <= self.error_status <= 599),
                ("input_tokens", ">= 0", self.input_tokens >= 0),
                ("output_tokens", ">= 0", self.output_tokens >= 0),
                ("input_tokens_jitter", ">= 0", self.input_tokens_jitter >= 0),
                ("output_tokens_jitter", ">= 0", self.output_tokens_jitter >= 0),
                ("quality_mean", "in [0, 1]", 0 <= self.quality_mean <= 1),
                ("quality_sd", ">= 0", self.quality_sd >= 0),
                ("pass_threshold", "in [0, 1]", 0 <= self.pass_threshold <= 1),
                ("eval_sample_rate", "in [0, 1]", 0 <= self.eval_sample_rate <= 1),
                ("thumbs_down_rate", "in [0, 1]", 0 <= self.thumbs_down_rate <= 1),
                ("sleep_cap_s", ">= 0", self.sleep_cap_s >= 0),
            )
            if not ok
        ]
        if problems:
            raise ValueError("; ".join(problems))

    def replace(self, **changes: Any) -> Behaviour:
        """A copy with `changes` applied; unknown names and out-of-range values raise ValueError."""
        known = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown behaviour field(s) {unknown}; known: {sorted(known)}")
        coerced: dict[str, Any] = {}
        for name, value in changes.items():
            # JSON gives bools where a number was meant ("error_rate": true) without complaint.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if name == "error_status":
                if value != int(value):
                    raise ValueError(f"error_status must be an integer, got {value!r}")
                coerced[name] = int(value)
            else:
                coerced[name] = float(value)
        return dataclasses.replace(self, **coerced)

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)

    def ttft_quantile(self, q: float) -> float:
        """The scripted TTFT quantile (e.g. 0.95), to compare with what Prometheus computes."""
        return self.ttft_median_s * math.exp(self.ttft_sigma * _normal_ppf(q))

    def latency_quantile(self, q: float) -> float:
        """The scripted end-to-end latency quantile, ignoring the floor at TTFT."""
        return self.latency_median_s * math.exp(self.latency_sigma * _normal_ppf(q))


def _normal_ppf(q: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


@dataclass
class ServerStats:
    """What a server did, counted by the server itself (to compare with what Prometheus saw)."""

    requests: int = 0
    ok: int = 0
    errors: int = 0
    streamed: int = 0
    judged: int = 0
    passed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    errors_by_status: dict[int, int] = field(default_factory=dict)


class _Metrics:
    """The series one server exports, in its own registry so servers in one process stay apart."""

    def __init__(self, model: str, error_statuses: tuple[int, ...], eval_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.model = model
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration (OpenTelemetry gen_ai.client.operation.duration).",
            ["gen_ai_operation_name", "gen_ai_request_model", "error_type"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to generate the first token (OpenTelemetry gen_ai.server.time_to_first_token).",
            ["gen_ai_operation_name", "gen_ai_request_model"],
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per operation (OpenTelemetry gen_ai.client.token.usage).",
            ["gen_ai_operation_name", "gen_ai_request_model", "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
            registry=self.registry,
        )
        # Not registered at all without eval metrics: then only the judge's series may carry them.
        eval_registry = self.registry if eval_metrics else CollectorRegistry(auto_describe=True)
        self.eval_score = Histogram(
            "llm_eval_score",
            "Judged answer quality in [0, 1] for a sample of responses (llmrollout).",
            ["gen_ai_request_model"],
            buckets=EVAL_SCORE_BUCKETS,
            registry=eval_registry,
        )
        self.eval_results = Counter(
            "llm_eval_results",
            "Judged responses by verdict against the pass threshold (llmrollout).",
            ["gen_ai_request_model", "result"],
            registry=eval_registry,
        )
        # Series exist at 0 from the first scrape: a counter that first appears already above 0 loses
        # its first increments in rate()/increase(), which would skew the first analysis interval.
        for status in error_statuses:
            self.error_series(status)
        self.duration.labels(OPERATION, model, "")
        self.ttft.labels(OPERATION, model)
        for token_type in ("input", "output"):
            self.tokens.labels(OPERATION, model, token_type)
        self.eval_score.labels(model)
        for result in ("pass", "fail"):
            self.eval_results.labels(model, result)

    def error_series(self, status: int) -> Any:
        return self.duration.labels(OPERATION, self.model, str(status))


@dataclass(frozen=True)
class _Plan:
    """Everything random about one request, drawn up front under the lock."""

    fail: bool
    status: int
    ttft: float
    latency: float
    input_tokens: int
    output_tokens: int
    finish_reason: str
    score: float | None
    passed: bool
    # Without the server's own eval metrics: every answer's scripted quality and its user's thumbs.
    quality: float | None
    thumbs_down: bool
    sleep_first: float
    sleep_rest: float


_WORDS = ("the", "model", "answers", "with", "simulated", "tokens", "for", "this", "rollout", "test")


class ModelServer:
    """One simulated model server. `start()` binds a free loopback port; `stop()` closes every connection."""

    def __init__(
        self,
        name: str,
        model: str,
        behaviour: Behaviour | None = None,
        *,
        seed: int | None = None,
        host: str = "127.0.0.1",
        telemetry: str = "otel",
        eval_metrics: bool = True,
    ) -> None:
        self.name = name
        self.model = model
        self.host = host
        self.eval_metrics = eval_metrics
        self._behaviour = behaviour or Behaviour()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stats = ServerStats()
        self.metrics = _Metrics(model, (self._behaviour.error_status,), eval_metrics)
        if telemetry not in ("otel", "vllm", "litellm"):
            raise ValueError(f"telemetry is otel, vllm or litellm, not {telemetry!r}")
        # vLLM's own names and labels beside the OTel ones, as a vLLM server behind an OTel-instrumented
        # client would show: the vllm preset reads these, the openTelemetryGenAI preset the others.
        self.vllm = VLLMMetrics(self.metrics.registry, model) if telemetry == "vllm" else None
        # LiteLLM's series as a LiteLLM proxy in front of this server would export them, with this
        # server's model name as the requested_model.
        self.litellm = LiteLLMMetrics(self.metrics.registry) if telemetry == "litellm" else None
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._http is not None:
            return self
        self._http = _HTTPServer(self, (self.host, 0))
        self._thread = threading.Thread(
            # A short poll interval keeps stop() fast: shutdown() waits for the loop to notice.
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"model-server-{self.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        http, thread = self._http, self._thread
        self._http = self._thread = None
        if http is None:
            return
        http.shutdown()
        http.close_all()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._http is not None

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError(f"model server {self.name} is not running")
        return int(self._http.server_address[1])

    @property
    def address(self) -> str:
        """host:port, as a Prometheus target."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL (http://127.0.0.1:PORT); the API is under /v1."""
        return f"http://{self.address}"

    # behaviour and observations -------------------------------------------------------------------

    @property
    def behaviour(self) -> Behaviour:
        with self._lock:
            return self._behaviour

    def configure(self, **changes: Any) -> Behaviour:
        """Change some behaviour fields (e.g. `ttft_median_s=1.2, error_rate=0.1`); takes effect at once."""
        with self._lock:
            self._behaviour = self._behaviour.replace(**changes)
            behaviour = self._behaviour
        self.metrics.error_series(behaviour.error_status)
        return behaviour

    def set_behaviour(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._behaviour = behaviour
        self.metrics.error_series(behaviour.error_status)

    def stats(self) -> ServerStats:
        with self._lock:
            return dataclasses.replace(self._stats, errors_by_status=dict(self._stats.errors_by_status))

    def sample(self, name: str, **labels: str) -> float:
        """A value from this server's own registry, e.g. `sample("llm_eval_results_total", result="pass")`.

        Labels not given are summed over, so `sample("gen_ai_client_operation_duration_seconds_count")`
        counts every request. Missing series read as 0.
        """
        total = 0.0
        for metric in self.metrics.registry.collect():
            for s in metric.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total

    def metrics_text(self) -> str:
        return generate_latest(self.metrics.registry).decode()

    # the simulated model --------------------------------------------------------------------------

    def _plan(self, max_tokens: int | None) -> _Plan:
        with self._lock:
            b, rng = self._behaviour, self._rng
            fail = rng.random() < b.error_rate
            ttft = b.ttft_median_s * math.exp(b.ttft_sigma * rng.gauss(0.0, 1.0))
            latency = max(ttft, b.latency_median_s * math.exp(b.latency_sigma * rng.gauss(0.0, 1.0)))
            n_in = _tokens(rng, b.input_tokens, b.input_tokens_jitter)
            n_out = _tokens(rng, b.output_tokens, b.output_tokens_jitter)
            finish = "stop"
            if max_tokens is not None and n_out > max_tokens:
                n_out, finish = max(1, max_tokens), "length"
            score: float | None = None
            quality: float | None = None
            thumbs_down = False
            if not fail and not self.eval_metrics:
                quality = _beta(rng, b.quality_mean, b.quality_sd)
                thumbs_down = rng.random() < b.thumbs_down_rate
            elif not fail and rng.random() < b.eval_sample_rate:
                score = _beta(rng, b.quality_mean, b.quality_sd)
        if fail:
            # A failing request fails fast: its duration is a TTFT-like wait, not a full generation.
            latency = ttft
        first = min(ttft, b.sleep_cap_s)
        return _Plan(
            fail=fail,
            status=b.error_status if fail else 200,
            ttft=ttft,
            latency=latency,
            input_tokens=n_in,
            output_tokens=n_out,
            finish_reason=finish,
            score=score,
            passed=score is not None and score >= b.pass_threshold,
            quality=quality,
            thumbs_down=thumbs_down,
            sleep_first=first,
            sleep_rest=max(0.0, min(latency, b.sleep_cap_s) - first),
        )

    def _record(self, plan: _Plan, streamed: bool) -> None:
        m = self.metrics
        with self._lock:
            s = self._stats
            s.requests += 1
            s.streamed += streamed
            if plan.fail:
                s.errors += 1
                s.errors_by_status[plan.status] = s.errors_by_status.get(plan.status, 0) + 1
            else:
                s.ok += 1
                s.input_tokens += plan.input_tokens
                s.output_tokens += plan.output_tokens
                if plan.score is not None:
                    s.judged += 1
                    s.passed += plan.passed
                    s.failed += not plan.passed
        if self.vllm is not None:
            if plan.fail:
                self.vllm.fail(f"{plan.status // 100}xx")
            else:
                reason = "length" if plan.finish_reason == "length" else "stop"
                self.vllm.finish(plan.ttft, plan.latency, plan.input_tokens, plan.output_tokens, reason)
        if self.litellm is not None:
            self.litellm.request(
                self.model,
                plan.status if plan.fail else 200,
                plan.latency,
                plan.input_tokens,
                plan.output_tokens,
            )
        if plan.fail:
            m.error_series(plan.status).observe(plan.latency)
            return
        m.duration.labels(OPERATION, self.model, "").observe(plan.latency)
        m.ttft.labels(OPERATION, self.model).observe(plan.ttft)
        m.tokens.labels(OPERATION, self.model, "input").observe(plan.input_tokens)
        m.tokens.labels(OPERATION, self.model, "output").observe(plan.output_tokens)
        if plan.score is not None:
            m.eval_score.labels(self.model).observe(plan.score)
            m.eval_results.labels(self.model, "pass" if plan.passed else "fail").inc()

    def complete(self, request: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Serve one non-streaming chat completion without HTTP: (status, JSON body). Records metrics."""
        plan = self._plan(_max_tokens(request))
        _sleep(plan.sleep_first + plan.sleep_rest)
        self._record(plan, streamed=False)
        if plan.fail:
            return plan.status, _error_body(plan.status)
        return 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": f"sim-{self.name}",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": _answer(plan)},
                    "logprobs": None,
                    "finish_reason": plan.finish_reason,
                }
            ],
            "usage": _usage(plan),
        }

    def stream(self, request: Mapping[str, Any]) -> tuple[int, dict[str, Any] | Iterator[dict[str, Any]]]:
        """Serve one streaming chat completion: (status, error body) or (200, iterator of chunks)."""
        plan = self._plan(_max_tokens(request))
        if plan.fail:
            _sleep(plan.sleep_first)
            self._record(plan, streamed=True)
            return plan.status, _error_body(plan.status)
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        return 200, self._chunks(plan, include_usage)

    def _chunks(self, plan: _Plan, include_usage: bool) -> Iterator[dict[str, Any]]:
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": f"sim-{self.name}",
        }
        _sleep(plan.sleep_first)
        yield {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
        words = _answer(plan).split(" ")
        pieces = max(1, min(8, len(words)))
        per = math.ceil(len(words) / pieces)
        for i in range(0, len(words), per):
            _sleep(plan.sleep_rest / pieces)
            text = " ".join(words[i : i + per]) + (" " if i + per < len(words) else "")
            yield {**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        # Recorded before the last chunk, so a client that has read the whole stream sees the metrics.
        self._record(plan, streamed=True)
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": plan.finish_reason}]}
        if include_usage:
            yield {**base, "choices": [], "usage": _usage(plan)}


def _beta(rng: random.Random, mean: float, sd: float) -> float:
    if sd <= 0 or mean <= 0 or mean >= 1:
        return mean
    # A Beta with mean m has variance < m(1-m); cap the spread so the parameters stay positive.
    var = min(sd * sd, 0.9 * mean * (1 - mean))
    concentration = mean * (1 - mean) / var - 1
    return rng.betavariate(mean * concentration, (1 - mean) * concentration)


def _tokens(rng: random.Random, mean: float, jitter: float) -> int:
    return max(1, round(rng.uniform(mean - jitter, mean + jitter)))


def _max_tokens(request: Mapping[str, Any]) -> int | None:
    value = request.get("max_completion_tokens", request.get("max_tokens"))
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def _text(tokens: int) -> str:
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(tokens))


def _answer(plan: _Plan) -> str:
    text = _text(plan.output_tokens)
    if plan.quality is None:
        return text
    return f"{text} [sim quality={plan.quality:.3f} feedback={'down' if plan.thumbs_down else 'up'}]"


MARKER = re.compile(r"\[sim quality=(?P<quality>[0-9.]+) feedback=(?P<feedback>up|down)\]")


def scripted(answer: str) -> tuple[float, str] | None:
    """(quality, "up" or "down") as the marker at the end of an answer says; None without one."""
    found = MARKER.search(answer)
    return None if found is None else (float(found["quality"]), found["feedback"])


def _usage(plan: _Plan) -> dict[str, int]:
    return {
        "prompt_tokens": plan.input_tokens,
        "completion_tokens": plan.output_tokens,
        "total_tokens": plan.input_tokens + plan.output_tokens,
    }


def _error_body(status: int) -> dict[str, Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {
        "error": {"message": f"simulated failure (HTTP {status})", "type": kind, "param": None, "code": None}
    }


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: ModelServer, address: tuple[str, int]) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        """Close the listener and every keep-alive connection, so a stopped server really is gone."""
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    # Idle keep-alive connections give their thread back after this long.
    timeout = 30
    # Headers and body are separate writes; with Nagle's algorithm and the client's delayed ACK each
    # response would wait ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the test output

    def do_GET(self) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(owner.metrics.registry), CONTENT_TYPE_LATEST)
        elif path == "/control":
            self._json(200, self._control_view())
        elif path == "/v1/models":
            self._json(
                200, {"object": "list", "data": [{"id": owner.model, "object": "model", "owned_by": "sim"}]}
            )
        elif path == "/health":
            self._send(200, b"ok\n", "text/plain")
        else:
            self._json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        request = self._read_json()
        if request is None:
            return
        owner = self.server.owner
        if request.get("stream") is True:
            status, result = owner.stream(request)
            if isinstance(result, dict):
                self._json(status, result)
            else:
                self._sse(result)
        else:
            status, body = owner.complete(request)
            self._json(status, body)

    def do_PUT(self) -> None:
        if self.path.split("?", 1)[0] != "/control":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        changes = self._read_json()
        if changes is None:
            return
        try:
            self.server.owner.configure(**changes)
        except (TypeError, ValueError) as exc:
            self._json(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
            return
        self._json(200, self._control_view())

    def _control_view(self) -> dict[str, Any]:
        owner = self.server.owner
        stats = dataclasses.asdict(owner.stats())
        stats["errors_by_status"] = {str(k): v for k, v in stats["errors_by_status"].items()}
        return {
            "name": owner.name,
            "model": owner.model,
            "behaviour": owner.behaviour.to_dict(),
            "stats": stats,
        }

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            self._json(400, {"error": {"message": f"invalid JSON: {exc}", "type": "invalid_request_error"}})
            return None
        if not isinstance(body, dict):
            self._json(400, {"error": {"message": "expected a JSON object", "type": "invalid_request_error"}})
            return None
        return body

    def _json(self, status: int, body: Mapping[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Model-Server", self.server.owner.name)
        self.end_headers()
        self.wfile.write(payload)

    def _sse(self, chunks: Iterator[dict[str, Any]]) -> None:
        # No length is known up front; closing the connection marks the end (HTTP/1.1 allows it).
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("X-Model-Server", self.server.owner.name)
        self.end_headers()
        self.close_connection = True
        for chunk in chunks:
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
