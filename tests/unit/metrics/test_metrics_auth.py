"""Prometheus credentials: sent as an Authorization header, refusals named by their source, and the
secret itself never in a message or a repr. Against a real local HTTP server that checks them."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import pytest

from llmrollout.metrics import Credentials, MetricsUnavailableError
from tests.unit.metrics.test_metrics_client import Handler, Server, api, reply, serve, success

__all__ = ["serve"]  # the fixture, shared with the client's tests

PASSWORD = "s3cret-pa55"
EXPECTED = "Basic " + base64.b64encode(f"reader:{PASSWORD}".encode()).decode()


def guarded(expected: str) -> Handler:
    """Answers like Prometheus behind --web.config.file basic_auth_users: 401 with a plain body."""

    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.headers.get("Authorization") == expected:
            reply(200, success([]))(request)
            return
        request.send_response(401)
        request.send_header("WWW-Authenticate", "Basic")
        request.send_header("Content-Type", "text/plain; charset=utf-8")
        request.end_headers()
        request.wfile.write(b"Unauthorized\n")

    return handle


def test_basic_auth_is_sent_and_accepted(serve: Callable[[Handler], Server]) -> None:
    credentials = Credentials.basic("reader", PASSWORD, "basic auth from Secret ns/prom-auth")
    data = api(serve(guarded(EXPECTED)), credentials=credentials).query("up", 1.0, time.monotonic() + 5)
    assert data == {"resultType": "vector", "result": []}


def test_a_bearer_token_is_sent_stripped(serve: Callable[[Handler], Server]) -> None:
    credentials = Credentials.bearer("tok-123\n", "bearer token from Secret ns/t key 'token'")
    data = api(serve(guarded("Bearer tok-123")), credentials=credentials).query(
        "up", 1.0, time.monotonic() + 5
    )
    assert data["result"] == []


@pytest.mark.parametrize(
    ("credentials", "said"),
    [
        (None, "HTTP 401 Unauthorized) without credentials; give them with spec.metrics.prometheus.auth"),
        (
            Credentials.basic("reader", "wrong-" + PASSWORD, "basic auth from Secret ns/prom-auth"),
            "refused the basic auth from Secret ns/prom-auth (HTTP 401 Unauthorized)",
        ),
    ],
)
def test_a_refusal_names_the_secret_never_its_value(
    serve: Callable[[Handler], Server], credentials: Credentials | None, said: str
) -> None:
    with pytest.raises(MetricsUnavailableError) as caught:
        api(serve(guarded(EXPECTED)), credentials=credentials).query("up", 1.0, time.monotonic() + 5)
    assert said in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert "Basic " not in str(caught.value)


def test_a_forbidden_answer_is_a_refusal_too(serve: Callable[[Handler], Server]) -> None:
    credentials = Credentials.bearer("t", "bearer token from Secret ns/t key 'token'")
    with pytest.raises(MetricsUnavailableError, match=r"refused the bearer token .* \(HTTP 403 Forbidden\)"):
        api(serve(reply(403, b"denied")), credentials=credentials).query("up", 1.0, time.monotonic() + 5)


def test_the_secret_is_not_in_the_repr() -> None:
    credentials = Credentials.basic("reader", PASSWORD, "basic auth from Secret ns/prom-auth")
    encoded = EXPECTED.split()[1]
    assert PASSWORD not in repr(credentials) and encoded not in repr(credentials)


@pytest.mark.parametrize("token", ["", "  \n", "tok\x00en", "tok\nen", "tökén"])
def test_a_bearer_token_that_cannot_be_a_header_is_refused_without_quoting_it(token: str) -> None:
    with pytest.raises(ValueError, match="not printable ASCII") as caught:
        Credentials.bearer(token, "bearer token from Secret ns/t key 'token'")
    assert token.strip() == "" or token.strip() not in str(caught.value)
