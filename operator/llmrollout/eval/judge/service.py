"""The judge service: HTTP in, a bounded queue, scoring workers, Prometheus metrics out.

Callers (gateways, apps, the traffic generator) must never wait on the judge: POST /v1/exchanges only
samples and enqueues, and a full queue drops the exchange and counts it.
"""

from __future__ import annotations

import json
import queue
import random
import re
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmrollout.eval._types import Exchange, Message
from llmrollout.eval.golden import GoldenMessage
from llmrollout.eval.judge.metrics import JudgeMetrics
from llmrollout.eval.judge.otlp import exchanges_from_logs
from llmrollout.eval.scorers.base import Scorer

VARIANT_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_BODY_BYTES = 1 << 20
MAX_BATCH = 100

Outcome = Literal["sampled", "not_sampled", "dropped"]


class ExchangeIn(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    variant: str = Field(pattern=VARIANT_PATTERN, max_length=63)
    messages: tuple[GoldenMessage, ...] | None = Field(None, min_length=1)
    prompt: str | None = None
    response: str
    reference: str | dict[str, Any] | None = None
    rubric: str | None = None

    @model_validator(mode="after")
    def _one_question(self) -> ExchangeIn:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of messages or prompt")
        return self

    def exchange(self) -> Exchange:
        if self.messages is not None:
            conversation = tuple(Message(role=m.role, content=m.content) for m in self.messages)
        else:
            conversation = (Message(role="user", content=self.prompt or ""),)
        return Exchange(conversation, self.response, self.reference, self.rubric)


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    variant: str = Field(pattern=VARIANT_PATTERN, max_length=63)
    value: Literal["up", "down"]


@dataclass(frozen=True)
class JudgeSettings:
    sample_rate: float = 0.05
    queue_size: int = 1000
    workers: int = 2
    variant_label: str = "variant"
    # Variants the service accepts; empty accepts any DNS label (each one is a label value on /metrics).
    variants: frozenset[str] = frozenset()
    # The OTLP log record or resource attribute naming the variant (default: variant_label).
    otlp_variant_attribute: str | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A caller that hung up (shutdown, its own timeout) is routine for a fire-and-forget endpoint.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class JudgeService:
    def __init__(
        self,
        scorer: Scorer,
        settings: JudgeSettings = JudgeSettings(),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: CollectorRegistry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.scorer = scorer
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = JudgeMetrics(self.registry, settings.variant_label)
        self.metrics.prepare(sorted(settings.variants))
        self._queue: queue.Queue[tuple[str, Exchange] | None] = queue.Queue(maxsize=settings.queue_size)
        self.metrics.queue_capacity.set(settings.queue_size)
        self.metrics.queue_depth.set_function(self._queue.qsize)
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._server = _Server((host, port), _handler(self))
        self._threads = [threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True)]
        self._threads += [
            threading.Thread(target=self._work, name=f"judge-{i}", daemon=True)
            for i in range(settings.workers)
        ]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> JudgeService:
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for _ in range(self.settings.workers):
            self._queue.put(None)  # blocking: lets workers finish what they hold, then stop

    def __enter__(self) -> JudgeService:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def submit(self, variant: str, exchange: Exchange) -> Outcome:
        """Sample and enqueue without blocking; a full queue drops the exchange and counts it."""
        with self._rng_lock:
            sampled = self._rng.random() < self.settings.sample_rate
        outcome: Outcome = "not_sampled"
        if sampled:
            try:
                self._queue.put_nowait((variant, exchange))
                outcome = "sampled"
            except queue.Full:
                outcome = "dropped"
                self.metrics.dropped.labels(variant).inc()
        self.metrics.received.labels(variant, outcome).inc()
        return outcome

    def feedback(self, variant: str, value: str) -> None:
        self.metrics.feedback.labels(variant, value).inc()

    def accepts(self, variant: str) -> bool:
        if not re.fullmatch(VARIANT_PATTERN, variant) or len(variant) > 63:
            return False
        return not self.settings.variants or variant in self.settings.variants

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            variant, exchange = job
            started = time.monotonic()
            try:
                score = self.scorer.score(exchange)
            except Exception as error:  # a scorer bug must not kill the worker and stall the queue
                self.metrics.unscored.labels(variant, "error").inc()
                print(f"llmrollout judge: scorer failed: {error!r}", flush=True)
                continue
            finally:
                self.metrics.latency.observe(time.monotonic() - started)
            if score.value is None or score.verdict not in ("pass", "fail"):
                self.metrics.unscored.labels(variant, score.verdict).inc()
                continue
            self.metrics.score.labels(variant).observe(score.value)
            self.metrics.results.labels(variant, score.verdict).inc()


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg'].removeprefix('Value error, ')}"
        for e in error.errors()
    )


def _handler(service: JudgeService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _json(self) -> Any:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                self._send(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
                return None
            try:
                return json.loads(self.rfile.read(length))
            except ValueError:
                self._send(400, {"error": "body is not JSON"})
                return None

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(service.registry), CONTENT_TYPE_LATEST)
            elif self.path in ("/healthz", "/readyz"):
                self._send(200, {"status": "ok", "queue": service.queue_depth()})
            else:
                self._send(404, {"error": f"no {self.path}"})

        def do_POST(self) -> None:
            if self.path == "/v1/exchanges":
                self._exchanges()
            elif self.path == "/v1/logs":
                self._otlp_logs()
            elif self.path == "/v1/feedback":
                self._feedback()
            else:
                self._send(404, {"error": f"no {self.path}"})

        def _exchanges(self) -> None:
            raw = self._json()
            if raw is None:
                return
            batch = raw if isinstance(raw, list) else [raw]
            if len(batch) > MAX_BATCH:
                self._send(413, {"error": f"more than {MAX_BATCH} exchanges in one request"})
                return
            try:
                parsed = [ExchangeIn.model_validate(item) for item in batch]
            except ValidationError as error:
                self._send(400, {"error": _problems(error)})
                return
            unknown = sorted({p.variant for p in parsed if not service.accepts(p.variant)})
            if unknown:
                self._send(400, {"error": f"unknown variant {', '.join(unknown)}"})
                return
            outcomes = [service.submit(p.variant, p.exchange()) for p in parsed]
            self._send(202, {o: outcomes.count(o) for o in ("sampled", "not_sampled", "dropped")})

        def _otlp_logs(self) -> None:
            content_type = (self.headers.get("content-type") or "").split(";")[0].strip()
            if content_type != "application/json":
                # Drain the body so the connection stays usable, then say what would work.
                self.rfile.read(min(int(self.headers.get("content-length") or 0), MAX_BODY_BYTES))
                message = "send OTLP/HTTP JSON (e.g. a Collector otlphttp exporter with encoding: json)"
                self._send(415, {"error": message})
                return
            raw = self._json()
            if raw is None:
                return
            attribute = service.settings.otlp_variant_attribute or service.settings.variant_label
            extracted = exchanges_from_logs(raw, attribute)
            rejected, reason = extracted.rejected, extracted.reason
            for variant, exchange in extracted.exchanges:
                if service.accepts(variant):
                    service.submit(variant, exchange)
                else:
                    rejected, reason = rejected + 1, f"unknown variant {variant}"
            # ExportLogsServiceResponse: an empty object, or partialSuccess naming what was refused.
            body = {"partialSuccess": {"rejectedLogRecords": str(rejected), "errorMessage": reason}}
            self._send(200, body if rejected else {})

        def _feedback(self) -> None:
            raw = self._json()
            if raw is None:
                return
            try:
                feedback = FeedbackIn.model_validate(raw)
            except ValidationError as error:
                self._send(400, {"error": _problems(error)})
                return
            if not service.accepts(feedback.variant):
                self._send(400, {"error": f"unknown variant {feedback.variant}"})
                return
            service.feedback(feedback.variant, feedback.value)
            self._send(202, {"recorded": 1})

        def log_message(self, *_: Any) -> None:
            pass  # one line per sampled exchange would drown the logs; /metrics counts them

    return Handler
