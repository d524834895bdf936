"""The bounded Prometheus client against a real local HTTP server that misbehaves."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from llmrollout.metrics import PRESETS, MetricsUnavailableError
from llmrollout.metrics.client import PrometheusAPI, QueryRejectedError, short
from llmrollout.metrics.prometheus import PrometheusProvider

Handler = Callable[[BaseHTTPRequestHandler], None]


class Server:
    """A threaded HTTP server on a loopback port that runs `handle` for every GET."""

    def __init__(self, handle: Handler) -> None:
        class Requests(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                # The client hangs up on purpose in these tests.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Requests)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.address = f"http://127.0.0.1:{self.httpd.server_port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def start(handle: Handler) -> Server:
        servers.append(Server(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def reply(status: int, body: bytes, chunked: bool = False) -> Handler:
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        if not chunked:
            request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handle


def success(result: list[Any]) -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def api(server: Server, **kwargs: Any) -> PrometheusAPI:
    return PrometheusAPI(httpx.Client(timeout=5.0), server.address, **kwargs)


def test_a_normal_answer(serve: Callable[[Handler], Server]) -> None:
    server = serve(reply(200, success([])))
    assert api(server).query("up", 1.0, time.monotonic() + 5) == {"resultType": "vector", "result": []}


def test_sixty_megabytes_are_cut_off_at_the_limit(serve: Callable[[Handler], Server]) -> None:
    sent: list[int] = []

    def flood(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.end_headers()  # no Content-Length: the size shows only while reading
        chunk = b"[" + b"0," * 32767 + b"0"
        for _ in range((60 << 20) // len(chunk)):
            request.wfile.write(chunk)
            sent.append(len(chunk))

    server = serve(flood)
    started = time.monotonic()
    with pytest.raises(MetricsUnavailableError, match=r"larger than 1048576 bytes"):
        api(server).query("up", 1.0, time.monotonic() + 20)
    assert time.monotonic() - started < 5
    assert sum(sent) < 60 << 20  # the server was cut off, not read to the end


def test_the_error_of_an_answer_over_the_limit_keeps_none_of_it(serve: Callable[[Handler], Server]) -> None:
    """A batch holds the errors of all its queries at once: no error may keep the bytes read before
    the cut alive through the frames of its traceback."""

    def flood(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.end_headers()
        for _ in range(100):
            request.wfile.write(b" " * (64 << 10))

    with pytest.raises(MetricsUnavailableError, match=r"larger than 1048576 bytes") as caught:
        api(serve(flood)).query("up", 1.0, time.monotonic() + 20)
    held = [
        (frame.f_code.co_name, name, len(value))
        for frame, _ in traceback.walk_tb(caught.value.__traceback__)
        for name, value in frame.f_locals.items()
        if isinstance(value, (bytes, bytearray)) and len(value) > 128 << 10
    ]
    assert not held


def test_a_declared_size_over_the_limit_is_refused_before_reading(serve: Callable[[Handler], Server]) -> None:
    def declare(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", str(60 << 20))
        request.end_headers()
        request.wfile.write(b"{")

    with pytest.raises(MetricsUnavailableError, match="larger than 1000 bytes"):
        api(serve(declare), max_response_bytes=1000).query("up", 1.0, time.monotonic() + 5)


def test_a_dripping_server_is_bounded_by_the_window_deadline(serve: Callable[[Handler], Server]) -> None:
    def drip(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.end_headers()
        for _ in range(100):  # a byte every 0.3 s: every read is within the 5 s socket timeout
            request.wfile.write(b" ")
            request.wfile.flush()
            time.sleep(0.3)

    server = serve(drip)
    client = api(server, deadline_seconds=1.5)
    started = time.monotonic()
    with pytest.raises(
        MetricsUnavailableError, match=r"did not answer every query of the window within 1.5s"
    ):
        client.query("up", 1.0, client.deadline())
    assert 1.4 < time.monotonic() - started < 3


def test_one_deadline_covers_every_query_of_a_window_read(serve: Callable[[Handler], Server]) -> None:
    def slow(request: BaseHTTPRequestHandler) -> None:
        time.sleep(0.25)
        reply(200, success([]))(request)

    server = serve(slow)
    provider = PrometheusProvider(
        httpx.Client(timeout=5.0), server.address, PRESETS["openTelemetryGenAI"], namespace="n",
        deadline_seconds=1.0,
    )  # fmt: skip
    started = time.monotonic()
    # Each query takes 0.25 s and a window needs dozens: the read stops at the deadline, not at the end.
    with pytest.raises(MetricsUnavailableError, match="within 1s"):
        provider.read(["v1", "v2"], 0.0, 30.0)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (
            400,
            {"status": "error", "errorType": "bad_data", "error": "x" * 5000},
            QueryRejectedError,
            "bad_data",
        ),
        (
            503,
            {"status": "error", "errorType": "unavailable", "error": "y" * 5000},
            MetricsUnavailableError,
            "503",
        ),
        (200, "<html>" + "z" * 5000, MetricsUnavailableError, "did not answer like the Prometheus HTTP API"),
    ],
)
def test_error_text_is_cut_to_256_characters(
    serve: Callable[[Handler], Server], status: int, body: Any, error: type[Exception], message: str
) -> None:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    with pytest.raises(error, match=message) as caught:
        api(serve(reply(status, raw))).query("up", 1.0, time.monotonic() + 5)
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize(
    ("text", "expected"),
    [("short", "short"), ("a\n  b", "a b"), ("x" * 300, "x" * 255 + "…")],
)
def test_short(text: str, expected: str) -> None:
    assert short(text) == expected
