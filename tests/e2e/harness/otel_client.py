"""An LLM client as an OpenTelemetry-instrumented application runs it, for tests: one process per variant.

The official `opentelemetry-instrumentation-openai-v2` instruments the real `openai` client, and
`opentelemetry-exporter-prometheus` serves its metrics for Prometheus to scrape. The variant is a
resource attribute (`variant=<name>`), as `OTEL_RESOURCE_ATTRIBUTES` would set it: a pull exporter puts
it only on `target_info`. The instrumentation patches the `openai` module globally, so each variant
needs its own process.

Either instrumentation of the same client: the official `openai-v2`, or OpenLLMetry's
`opentelemetry-instrumentation-openai` ("openllmetry"), whose token histogram has unit `token` and so
arrives as `gen_ai_client_token_usage_token_*`, and which records TTFT for streamed calls.

Run as `python -m tests.e2e.harness.otel_client VARIANT BASE_URL MODEL INSTRUMENTATION`; it prints
`port <metrics port>`, then for each line `send N` on stdin sends N chat completions (every other one
streamed) and prints `sent <ok> <errors> <input tokens> <output tokens>`; EOF ends it. With
`--proxy` it is instead an application that serves POST /v1/chat/completions (printing
`proxy <port>`), each request one instrumented call to the model server, so that a traffic
generator's requests pass through it.
`OTelClient` drives it from a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Sent:
    ok: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class OTelClient:
    """The client process of one variant; `target` is its /metrics for Prometheus."""

    def __init__(
        self,
        variant: str,
        base_url: str,
        model: str,
        instrumentation: str = "openai-v2",
        *,
        proxy: bool = False,
    ) -> None:
        self.variant = variant
        self.instrumentation = instrumentation
        args = [variant, base_url, model, instrumentation, *(["--proxy"] if proxy else [])]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.harness.otel_client", *args],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self._line()
        if not line.startswith("port "):
            raise RuntimeError(f"OTel client for {variant} did not start: {line!r}")
        self.target = f"127.0.0.1:{int(line.split()[1])}"
        self.sent = Sent()
        # As a proxy, the application's own OpenAI-compatible URL, for traffic that should pass
        # through the instrumented client (`send` is not available then).
        self.url: str | None = None
        if proxy:
            line = self._line()
            if not line.startswith("proxy "):
                raise RuntimeError(f"OTel proxy for {variant} did not start: {line!r}")
            self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def send(self, count: int) -> Sent:
        assert self.process.stdin is not None
        self.process.stdin.write(f"send {count}\n")
        self.process.stdin.flush()
        words = self._line().split()
        if not words or words[0] != "sent":
            raise RuntimeError(f"OTel client for {self.variant} failed: {words!r}")
        ok, errors, tokens_in, tokens_out = (int(w) for w in words[1:])
        self.sent = Sent(
            self.sent.ok + ok,
            self.sent.errors + errors,
            self.sent.input_tokens + tokens_in,
            self.sent.output_tokens + tokens_out,
        )
        return self.sent

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _serve(client: Any, model: str) -> None:  # pragma: no cover - runs in a subprocess
    """The application: each POST /v1/chat/completions is one instrumented call to the model server."""
    import openai

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            try:
                response = client.chat.completions.create(
                    model=model, messages=request.get("messages") or [{"role": "user", "content": "hi"}]
                )
                status, body = 200, response.model_dump_json().encode()
            except openai.APIStatusError as error:
                status, body = error.status_code, json.dumps({"error": {"message": str(error)}}).encode()
            except openai.APIError as error:
                status, body = 502, json.dumps({"error": {"message": str(error)}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    http.daemon_threads = True
    threading.Thread(target=http.serve_forever, daemon=True).start()
    print(f"proxy {http.server_port}", flush=True)
    sys.stdin.read()  # until the test closes stdin
    http.shutdown()


def main(  # pragma: no cover - runs in a subprocess
    variant: str, base_url: str, model: str, instrumentation: str, proxy: bool = False
) -> None:
    import openai
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    provider = MeterProvider(
        resource=Resource.create({"variant": variant, "service.name": "support-bot"}),
        metric_readers=[PrometheusMetricReader(registry=registry)],
    )
    if instrumentation == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    elif instrumentation == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor  # type: ignore[no-redef]
    else:
        raise SystemExit(f"unknown instrumentation {instrumentation!r}")
    OpenAIInstrumentor().instrument(meter_provider=provider)
    server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    print(f"port {server.server_port}", flush=True)
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="test", max_retries=0)
    if proxy:
        _serve(client, model)
        return
    messages = [{"role": "user", "content": "Where is my order?"}]
    for line in sys.stdin:
        count = int(line.split()[1])
        ok = errors = tokens_in = tokens_out = 0
        for i in range(count):
            try:
                if i % 2:
                    chunks = client.chat.completions.create(
                        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
                    )
                    usage = None
                    for chunk in chunks:
                        usage = chunk.usage or usage
                else:
                    usage = client.chat.completions.create(model=model, messages=messages).usage
                ok += 1
                if usage is not None:
                    tokens_in += usage.prompt_tokens
                    tokens_out += usage.completion_tokens
            except openai.APIError:
                errors += 1
        print(f"sent {ok} {errors} {tokens_in} {tokens_out}", flush=True)


if __name__ == "__main__":  # pragma: no cover
    main(*sys.argv[1:5], proxy="--proxy" in sys.argv[5:])
