"""A small client for OpenAI-compatible endpoints (chat completions, embeddings): retries and metering."""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from llmrollout.eval._types import Message, Usage

RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class EndpointError(Exception):
    """The endpoint did not give a usable answer, after retries where retrying could help."""


@dataclass(frozen=True)
class Pricing:
    """USD per million tokens; zero for self-hosted models without a price."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    def cost(self, usage: Usage) -> float:
        return (
            usage.prompt_tokens * self.input_per_million + usage.completion_tokens * self.output_per_million
        ) / 1e6


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        # Full jitter: many workers retrying a rate-limited server should not retry in lockstep.
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class Meter:
    """Requests, tokens and cost spent through one client; shared by worker threads."""

    def __init__(self, pricing: Pricing = Pricing()) -> None:
        self.pricing = pricing
        self._lock = threading.Lock()
        self._usage = Usage()
        self._requests = 0
        self._retries = 0
        self._failures = 0

    def record(self, usage: Usage) -> None:
        with self._lock:
            self._usage = self._usage + usage
            self._requests += 1

    def record_retry(self) -> None:
        with self._lock:
            self._retries += 1

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1

    def snapshot(self) -> Metered:
        with self._lock:
            return Metered(
                self._usage, self._requests, self._retries, self._failures, self.pricing.cost(self._usage)
            )


@dataclass(frozen=True)
class Metered:
    usage: Usage
    requests: int
    retries: int
    failures: int
    cost_usd: float


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage
    latency_s: float


@dataclass(frozen=True)
class Embeddings:
    vectors: tuple[tuple[float, ...], ...]
    usage: Usage


class OpenAIClient:
    """One OpenAI-compatible base URL (e.g. http://bot-v1.team-a.svc:8000/v1).

    The caller owns `http` (TLS, proxies, default timeouts) and closes it; `timeout`, when given,
    overrides its timeout per request. At most `max_concurrency` requests are in flight through this
    client, whatever the number of threads using it.
    """

    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        *,
        api_key: str | None = None,
        max_concurrency: int = 4,
        retry: RetryPolicy = RetryPolicy(),
        meter: Meter | None = None,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._retry = retry
        self.meter = meter or Meter()
        self._timeout: float | httpx._client.UseClientDefault = (
            httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        )
        self._sleep = sleep
        self._rng = rng or random.Random()

    def chat(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
    ) -> Completion:
        body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        started = time.monotonic()
        payload = self._post("/chat/completions", body)
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.base_url}/chat/completions: no choices[0].message.content") from None
        if content is None:
            content = ""  # a refusal or tool call with no text is an empty answer, scored as such
        if not isinstance(content, str):
            raise EndpointError(f"{self.base_url}/chat/completions: message.content is not a string")
        usage = _usage(payload)
        self.meter.record(usage)
        return Completion(content, usage, time.monotonic() - started)

    def embed(self, model: str, inputs: Sequence[str]) -> Embeddings:
        payload = self._post("/embeddings", {"model": model, "input": list(inputs)})
        try:
            # Servers may return data out of order; index says which input each vector belongs to.
            rows = sorted(payload["data"], key=lambda row: int(row["index"]))
            vectors = tuple(tuple(float(x) for x in row["embedding"]) for row in rows)
        except (KeyError, TypeError, ValueError):
            raise EndpointError(f"{self.base_url}/embeddings: malformed data[].embedding") from None
        if len(vectors) != len(inputs):
            raise EndpointError(
                f"{self.base_url}/embeddings: {len(vectors)} vectors for {len(inputs)} inputs"
            )
        usage = _usage(payload)
        self.meter.record(usage)
        return Embeddings(vectors, usage)

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        url = self.base_url + path
        last = ""
        for attempt in range(self._retry.attempts):
            if attempt:
                self.meter.record_retry()
            retry_after: float | None = None
            try:
                with self._slots:
                    if self._timeout is None:  # the http client's own timeouts
                        response = self._http.post(url, json=body, headers=self._headers)
                    else:
                        response = self._http.post(
                            url, json=body, headers=self._headers, timeout=self._timeout
                        )
            except httpx.TransportError as error:
                last = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        self.meter.record_failure()
                        raise EndpointError(f"{url}: answer is not JSON") from None
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRIED_STATUSES:
                    break
                retry_after = _retry_after(response.headers.get("retry-after"))
            if attempt + 1 < self._retry.attempts:
                self._sleep(self._retry.delay(attempt, retry_after, self._rng))
        self.meter.record_failure()
        raise EndpointError(f"{url}: {last}")


def _usage(payload: Any) -> Usage:
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return Usage()
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    return Usage(
        prompt_tokens=prompt if isinstance(prompt, int) else 0,
        completion_tokens=completion if isinstance(completion, int) else 0,
    )


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date (RFC 9110); None when absent or unreadable."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()
