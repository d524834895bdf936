"""The Prometheus HTTP API (/api/v1/query) with bounds: answer size, one deadline per window, short errors.

A misconfigured address (a proxy, a wrong port, a hostile server) must not make the operator buffer a
60 MB page, wait forever on a server that drips a byte every few seconds (each read is within the
socket timeout, the whole answer never is), or copy a whole HTML error page into status and Events.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmrollout.metrics.base import MetricsError, MetricsUnavailableError

MAX_RESPONSE_BYTES = 1 << 20
DEADLINE_SECONDS = 30.0
MAX_ERROR_TEXT = 256


@dataclass(frozen=True)
class Credentials:
    """An Authorization header for Prometheus, and where it came from (for messages). The value is
    kept out of repr, so that no log line or message that shows the object shows the secret."""

    source: str  # e.g. "basic auth from Secret team-a/prom-auth": what a message may name
    authorization: str = field(repr=False)

    @classmethod
    def basic(cls, username: str, password: str, source: str) -> Credentials:
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        return cls(source, f"Basic {pair}")

    @classmethod
    def bearer(cls, token: str, source: str) -> Credentials:
        token = token.strip()  # a Secret made from a file often ends in a newline
        if not token or not token.isascii() or not token.isprintable():
            raise ValueError(f"the bearer token in {source} is empty or not printable ASCII")
        return cls(source, f"Bearer {token}")


class ResponseTooLargeError(MetricsUnavailableError):
    """Prometheus's answer was over the size cap: a batched read splits its group and asks again."""


class QueryRejectedError(MetricsError):
    """Prometheus answered, and refused this one query (bad syntax, too many samples)."""


def short(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """Text from outside, cut to `limit` characters, so that messages stay readable and bounded."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redacted(address: str) -> str:
    """The address without user:password, for messages that end up in status and Events."""
    # A regex rather than urlsplit: it must not fail on the malformed addresses it helps report.
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", address)


class PrometheusAPI:
    """Instant queries against one Prometheus; the caller owns `client` (TLS, auth, socket timeouts)."""

    def __init__(
        self,
        client: httpx.Client,
        address: str,
        *,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        deadline_seconds: float = DEADLINE_SECONDS,
        credentials: Credentials | None = None,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self.credentials = credentials
        self._url = address.rstrip("/") + "/api/v1/query"
        self.url = self._url
        self.address = redacted(address)
        self.max_response_bytes = max_response_bytes
        self.deadline_seconds = deadline_seconds

    def deadline(self) -> float:
        """A monotonic-clock deadline for one window read (every query of it shares the budget)."""
        return time.monotonic() + self.deadline_seconds

    def query(self, promql: str, at: float, deadline: float) -> dict[str, Any]:
        """The `data` of a successful answer; QueryRejectedError when Prometheus refuses this query,
        MetricsUnavailableError when it cannot be asked or does not answer like Prometheus."""
        status, body = self._get({"query": promql, "time": f"{at:.3f}"}, deadline)
        if status in (401, 403):
            raise self._refused(status)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or parsed.get("status") not in ("success", "error"):
            raise MetricsUnavailableError(
                f"{self.address} did not answer like the Prometheus HTTP API (HTTP {status}: "
                f"{short(body.decode(errors='replace'), 64)!r})"
            )
        if parsed["status"] == "success" and status == 200:
            data = parsed.get("data")
            if not isinstance(data, dict):
                raise MetricsUnavailableError(f"Prometheus at {self.address} answered without data")
            return data
        message = short(f"{parsed.get('errorType', 'error')}: {parsed.get('error', 'no message')}")
        # 400 and 422 are this query's fault (syntax, execution); anything else (503 timeouts and
        # overload, auth, proxies) says Prometheus cannot answer now, whatever we ask.
        if status in (400, 422):
            raise QueryRejectedError(f"Prometheus rejected the query: {message}")
        raise MetricsUnavailableError(f"Prometheus at {self.address} failed (HTTP {status}): {message}")

    def _get(self, params: dict[str, str], deadline: float) -> tuple[int, bytes]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._too_slow()
        configured = self._client.timeout
        # Every phase gets at most what is left of the window's budget, and no more than the client's
        # own timeout for that phase.
        timeout = httpx.Timeout(
            connect=min(remaining, configured.connect or remaining),
            read=min(remaining, configured.read or remaining),
            write=min(remaining, configured.write or remaining),
            pool=min(remaining, configured.pool or remaining),
        )
        try:
            headers = {"Authorization": self._credentials.authorization} if self._credentials else {}
            with self._client.stream(
                "GET", self._url, params=params, headers=headers, timeout=timeout
            ) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_response_bytes:
                    raise self._too_large()
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    too_large = len(body) > self.max_response_bytes
                    if too_large or time.monotonic() > deadline:
                        # Dropped before raising: the error's traceback keeps this frame's locals
                        # alive as long as the error, and a batch holds every query's error at once.
                        del body, chunk
                        raise self._too_large() if too_large else self._too_slow()
                return response.status_code, bytes(body)
        except httpx.TimeoutException as err:
            if time.monotonic() >= deadline - 0.01:
                raise self._too_slow() from err
            raise self._unreachable(err) from err
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            raise self._unreachable(err) from err

    def _refused(self, status: int) -> MetricsUnavailableError:
        # The body is not quoted: a proxy's login page says nothing useful, and whatever it says
        # is the server's to choose. The credentials are named by their Secret, never shown.
        said = "Unauthorized" if status == 401 else "Forbidden"
        if self._credentials is None:
            return MetricsUnavailableError(
                f"Prometheus at {self.address} refused the query (HTTP {status} {said}) without"
                " credentials; give them with spec.metrics.prometheus.auth"
            )
        return MetricsUnavailableError(
            f"Prometheus at {self.address} refused the {self._credentials.source} (HTTP {status} {said})"
        )

    def _unreachable(self, err: Exception) -> MetricsUnavailableError:
        return MetricsUnavailableError(
            f"Prometheus at {self.address} is unreachable: {type(err).__name__}: {short(str(err))}"
        )

    def _too_slow(self) -> MetricsUnavailableError:
        return MetricsUnavailableError(
            f"Prometheus at {self.address} did not answer every query of the window within "
            f"{self.deadline_seconds:g}s"
        )

    def _too_large(self) -> MetricsUnavailableError:
        return ResponseTooLargeError(
            f"Prometheus at {self.address} sent an answer larger than {self.max_response_bytes} bytes; "
            "narrow the series with metrics.labels, or check metrics.prometheus.scrapeInterval"
        )
