"""What stands in for the gateway's data plane: requests split by the weights the real HTTPRoute holds.

`TrafficGenerator` reads the weights from a `WeightSource` (normally `HTTPRouteWeights`, which reads the
HTTPRoute from the API server), re-reads them every `refresh_interval` so that the operator's weight
changes take effect within about that long, and sends each request to a backend picked at random in
proportion to the weights (weight 0 gets nothing), at a fixed rate from a small thread pool. It stops by
itself after `max_requests` requests or `duration` seconds, whichever comes first, and counts what it
sent per backend and per weight setting, so a test can check the split exactly against the weights in
force when each request was sent.

Which rule of the route carries the weights: the one whose matches select `POST /v1/chat/completions`
with the most specific path match (Exact, then the longest PathPrefix), the first such rule on a tie.
Matches that need headers or query parameters are treated as not matching, since the generator sends
neither. A backendRef is keyed by its Service name, or `Kind/name` for other kinds (e.g.
`InferencePool/pool-a`), or `namespace/name` when it points into another namespace. A backendRef with
no URL in `backends` counts as `unmapped` and is not sent, as a gateway would answer 500 for it.

With a `JudgeFeed`, the generator also plays the application and its users around the model: it posts
a `sample` share of its successful (non-streamed) exchanges to a real `llmrollout judge`
(`POST /v1/exchanges`), and for a `feedback` share it posts the user's thumbs up or down
(`POST /v1/feedback`) as the answer's marker scripts it (harness/modelserver.py). Both are
fire-and-forget, as the judge's callers are: a failed post is counted, never retried.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import httpx

CHAT_PATH = "/v1/chat/completions"
DEFAULT_REQUEST: dict[str, Any] = {
    "model": "llmrollout-e2e",
    "messages": [{"role": "user", "content": "How do I reset my password?"}],
}


class RouteUnavailableError(Exception):
    """The weights could not be read (API error); the generator keeps the last weights it had."""


class RouteNotFoundError(RouteUnavailableError):
    """The route does not exist (any more); like a gateway, the generator then routes nothing."""


class WeightSource(Protocol):
    def read(self) -> dict[str, int]:
        """{backend key: weight}; raises RouteUnavailableError or RouteNotFoundError."""
        ...


class FixedWeights:
    """Weights set by the test, for traffic that needs no cluster; `set()` changes them mid-run."""

    def __init__(self, weights: Mapping[str, int]) -> None:
        self._weights = dict(weights)
        self._lock = threading.Lock()

    def set(self, weights: Mapping[str, int]) -> None:
        with self._lock:
            self._weights = dict(weights)

    def read(self) -> dict[str, int]:
        with self._lock:
            return dict(self._weights)


class HTTPRouteWeights:
    """The weights of a real `gateway.networking.k8s.io/v1` HTTPRoute, read through the API server."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        name: str,
        *,
        path: str = CHAT_PATH,
        method: str = "POST",
    ) -> None:
        from kubernetes import client

        self._api = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.name = name
        self.path = path
        self.method = method

    def read(self) -> dict[str, int]:
        from kubernetes.client.exceptions import ApiException

        try:
            route = self._api.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", self.name, _request_timeout=5
            )
        except ApiException as exc:
            if exc.status == 404:
                raise RouteNotFoundError(f"HTTPRoute {self.namespace}/{self.name} not found") from None
            raise RouteUnavailableError(
                f"HTTPRoute {self.namespace}/{self.name}: {exc.status} {exc.reason}"
            ) from None
        except Exception as exc:  # urllib3 and socket errors have no common base worth naming
            raise RouteUnavailableError(f"HTTPRoute {self.namespace}/{self.name}: {exc}") from None
        return route_weights(route, path=self.path, method=self.method)


def route_weights(route: Mapping[str, Any], *, path: str = CHAT_PATH, method: str = "POST") -> dict[str, int]:
    """The weights of the rule of `route` (an HTTPRoute object) that a request to `path` would take."""
    namespace = route.get("metadata", {}).get("namespace", "")
    best: tuple[int, int, int] | None = None
    chosen: Mapping[str, Any] | None = None
    for rule in route.get("spec", {}).get("rules") or []:
        for match in rule.get("matches") or [{}]:
            rank = _match_rank(match, path, method)
            # Strictly greater: on a tie the earlier rule wins, as Gateway API precedence says.
            if rank is not None and (best is None or rank > best):
                best, chosen = rank, rule
    weights: dict[str, int] = {}
    for ref in (chosen or {}).get("backendRefs") or []:
        key = _backend_key(ref, namespace)
        weights[key] = weights.get(key, 0) + int(ref.get("weight", 1))
    return weights


def _match_rank(match: Mapping[str, Any], path: str, method: str) -> tuple[int, int, int] | None:
    if match.get("headers") or match.get("queryParams"):
        return None
    if match.get("method") and match["method"] != method:
        return None
    spec = match.get("path") or {"type": "PathPrefix", "value": "/"}
    kind, value = spec.get("type", "PathPrefix"), spec.get("value", "/")
    if kind == "Exact":
        rank = 2 if path == value else None
    elif kind == "PathPrefix":
        prefix = value.rstrip("/")
        rank = 1 if not prefix or path == prefix or path.startswith(prefix + "/") else None
    elif kind == "RegularExpression":
        import re

        rank = 0 if re.fullmatch(value, path) else None
    else:
        rank = None
    if rank is None:
        return None
    return (rank, len(value), 1 if match.get("method") else 0)


def _backend_key(ref: Mapping[str, Any], route_namespace: str) -> str:
    name = str(ref["name"])
    kind = ref.get("kind", "Service")
    group = ref.get("group", "")
    ns = ref.get("namespace")
    if kind != "Service" or group not in ("", "core"):
        name = f"{kind}/{name}"
    if ns and ns != route_namespace:
        name = f"{ns}/{name}"
    return name


@dataclass(frozen=True)
class JudgeFeed:
    """Where and how much of the traffic reaches the online evaluator."""

    url: str  # the judge's base URL (http://host:port)
    variants: Mapping[str, str]  # backend key -> the variant it serves
    sample: float = 0.5  # share of successful exchanges posted to /v1/exchanges
    feedback: float = 0.3  # share of successful exchanges whose user gives a thumbs up or down
    seed: int | None = None


@dataclass(frozen=True)
class WeightEpoch:
    """One stretch of time with the same weights, and what was sent while they held."""

    weights: dict[str, int]
    since: float  # seconds after the generator started
    sent: dict[str, int]


@dataclass(frozen=True)
class TrafficStats:
    sent: dict[str, int] = field(default_factory=dict)
    ok: dict[str, int] = field(default_factory=dict)
    http_errors: dict[str, int] = field(default_factory=dict)
    transport_errors: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)
    unroutable: int = 0
    epochs: tuple[WeightEpoch, ...] = ()
    route_reads: int = 0
    route_errors: int = 0
    last_route_error: str = ""
    elapsed: float = 0.0
    done: bool = False
    judged: dict[str, int] = field(default_factory=dict)  # exchanges posted to the judge, per backend
    thumbs: dict[str, int] = field(default_factory=dict)  # "<backend>/up" and "<backend>/down"
    judge_errors: int = 0

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    def sent_under(self, weights: Mapping[str, int]) -> dict[str, int]:
        """Requests sent while the route held `weights` (backends with weight 0 may be left out)."""
        wanted = {k: v for k, v in weights.items() if v}
        total: Counter[str] = Counter()
        for epoch in self.epochs:
            if {k: v for k, v in epoch.weights.items() if v} == wanted:
                total.update(epoch.sent)
        return dict(total)


class TrafficGenerator:
    """Sends chat completions to `backends` ({backend key: base URL}) split by `weights`."""

    def __init__(
        self,
        weights: WeightSource | Mapping[str, int],
        backends: Mapping[str, str],
        *,
        rate: float = 50.0,
        max_requests: int = 1000,
        duration: float = 30.0,
        concurrency: int = 4,
        refresh_interval: float = 0.5,
        stream: bool = False,
        request: Mapping[str, Any] | None = None,
        request_timeout: float = 10.0,
        seed: int | None = None,
        judge: JudgeFeed | None = None,
        models: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """`models` ({backend key: model}) sets the request's model per backend, as a client asking a
        LiteLLM proxy for each variant's model alias does; `headers` go with every request."""
        if rate <= 0 or max_requests < 0 or duration <= 0 or concurrency < 1:
            raise ValueError("rate, duration and concurrency must be positive, max_requests >= 0")
        self.source: WeightSource = FixedWeights(weights) if isinstance(weights, Mapping) else weights
        self.backends = {k: v.rstrip("/") for k, v in backends.items()}
        self.rate = rate
        self.max_requests = max_requests
        self.duration = duration
        self.concurrency = concurrency
        self.refresh_interval = refresh_interval
        self.stream = stream
        self.request_timeout = request_timeout
        self._request = dict(request or DEFAULT_REQUEST)
        body = {**self._request, **({"stream": True} if stream else {})}
        self._body = json.dumps(body)
        self._bodies = {key: json.dumps({**body, "model": model}) for key, model in (models or {}).items()}
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._rng = random.Random(seed)
        self.judge = judge
        if judge is not None and stream:
            raise ValueError("a JudgeFeed needs whole answers: streamed responses are not collected")
        # Its own random stream, so that feeding the judge leaves the routing draws as they were.
        self._judge_rng = random.Random(judge.seed if judge else None)
        self._judged: Counter[str] = Counter()
        self._thumbs: Counter[str] = Counter()
        self._judge_errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._weights: dict[str, int] = {}
        self._epochs: list[tuple[dict[str, int], float, Counter[str]]] = []
        self._sent: Counter[str] = Counter()
        self._ok: Counter[str] = Counter()
        self._http_errors: Counter[str] = Counter()
        self._transport_errors: Counter[str] = Counter()
        self._unmapped: Counter[str] = Counter()
        self._unroutable = 0
        self._route_reads = 0
        self._route_errors = 0
        self._last_route_error = ""
        self._started = 0.0
        self._finished: float | None = None
        self._threads: list[threading.Thread] = []
        self._client: httpx.Client | None = None

    # lifecycle ------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Read the weights once (a missing or unreadable route fails here, not silently later), then run."""
        if self._threads:
            return self
        self._set_weights(self.source.read(), count_read=True)
        self._started = time.monotonic()
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self._client = httpx.Client(limits=limits, timeout=self.request_timeout)
        self._threads = [
            threading.Thread(target=self._dispatch, name="traffic-dispatch", daemon=True),
            threading.Thread(target=self._refresh, name="traffic-route", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def wait(self, timeout: float | None = None) -> TrafficStats:
        """Block until the generator has finished (count or time bound reached, or stopped)."""
        limit = timeout if timeout is not None else self.duration + self.request_timeout + 5
        if not self._done.wait(limit):
            raise AssertionError(f"traffic did not finish within {limit}s: {self.stats()}")
        return self.stats()

    def stop(self, timeout: float = 10.0) -> TrafficStats:
        """Stop sending, let in-flight requests finish (bounded), release threads and connections."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._client is not None and not any(t.is_alive() for t in self._threads):
            self._client.close()
        return self.stats()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._done.is_set()

    @property
    def weights(self) -> dict[str, int]:
        with self._lock:
            return dict(self._weights)

    def wait_for_weights(self, expected: Mapping[str, int], timeout: float = 10.0) -> None:
        """Wait until the generator routes by `expected` (zero weights may be left out)."""
        wanted = {k: v for k, v in expected.items() if v}
        deadline = time.monotonic() + timeout
        while {k: v for k, v in self.weights.items() if v} != wanted:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"generator still routes by {self.weights} after {timeout}s, not {dict(expected)}"
                )
            time.sleep(0.05)

    def stats(self) -> TrafficStats:
        with self._lock:
            end = self._finished if self._finished is not None else time.monotonic()
            return TrafficStats(
                sent=dict(self._sent),
                ok=dict(self._ok),
                http_errors=dict(self._http_errors),
                transport_errors=dict(self._transport_errors),
                unmapped=dict(self._unmapped),
                unroutable=self._unroutable,
                epochs=tuple(WeightEpoch(dict(w), since, dict(sent)) for w, since, sent in self._epochs),
                route_reads=self._route_reads,
                route_errors=self._route_errors,
                last_route_error=self._last_route_error,
                elapsed=(end - self._started) if self._started else 0.0,
                done=self._done.is_set(),
                judged=dict(self._judged),
                thumbs=dict(self._thumbs),
                judge_errors=self._judge_errors,
            )

    # the threads ----------------------------------------------------------------------------------

    def _set_weights(self, weights: dict[str, int], count_read: bool) -> None:
        with self._lock:
            if count_read:
                self._route_reads += 1
            if weights != self._weights or not self._epochs:
                self._weights = weights
                since = time.monotonic() - self._started if self._started else 0.0
                self._epochs.append((dict(weights), since, Counter()))

    def _refresh(self) -> None:
        while not self._stop.wait(self.refresh_interval) and not self._done.is_set():
            try:
                weights = self.source.read()
            except RouteNotFoundError as exc:
                weights = {}
                self._note_route_error(str(exc))
            except RouteUnavailableError as exc:
                self._note_route_error(str(exc))
                continue
            self._set_weights(weights, count_read=True)

    def _note_route_error(self, message: str) -> None:
        with self._lock:
            self._route_errors += 1
            self._last_route_error = message

    def _dispatch(self) -> None:
        slots = threading.Semaphore(self.concurrency)
        end = self._started + self.duration
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="traffic") as pool:
            for k in range(self.max_requests):
                due = self._started + k / self.rate
                if due >= end or self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                # Bounded in-flight work: a slow backend slows the generator instead of queueing forever.
                if not self._acquire(slots, end):
                    break
                backend = self._choose()
                if backend is None:
                    slots.release()
                    continue
                pool.submit(self._send, backend, slots)
        with self._lock:
            self._finished = time.monotonic()
        self._done.set()

    def _acquire(self, slots: threading.Semaphore, end: float) -> bool:
        while not slots.acquire(timeout=0.1):
            if self._stop.is_set() or time.monotonic() >= end:
                return False
        return True

    def _choose(self) -> str | None:
        with self._lock:
            candidates = [(k, w) for k, w in self._weights.items() if w > 0]
            if not candidates:
                self._unroutable += 1
                return None
            keys = [k for k, _ in candidates]
            backend: str = self._rng.choices(keys, [w for _, w in candidates])[0]
            if backend not in self.backends:
                self._unmapped[backend] += 1
                return None
            self._sent[backend] += 1
            self._epochs[-1][2][backend] += 1
            return backend

    def _send(self, backend: str, slots: threading.Semaphore) -> None:
        try:
            assert self._client is not None
            url = self.backends[backend] + CHAT_PATH
            headers, body = self._headers, self._bodies.get(backend, self._body)
            if self.stream:
                with self._client.stream("POST", url, content=body, headers=headers) as response:
                    for _ in response.iter_bytes():
                        pass
                    status = response.status_code
            else:
                response = self._client.post(url, content=body, headers=headers)
                status = response.status_code
                if self.judge is not None and status == 200:
                    self._feed_judge(self.judge, backend, response)
            with self._lock:
                (self._ok if 200 <= status < 300 else self._http_errors)[backend] += 1
        except httpx.HTTPError:
            with self._lock:
                self._transport_errors[backend] += 1
        finally:
            slots.release()

    def _feed_judge(self, feed: JudgeFeed, backend: str, response: httpx.Response) -> None:
        from tests.e2e.harness.modelserver import scripted

        variant = feed.variants.get(backend)
        with self._lock:
            judged = self._judge_rng.random() < feed.sample
            rated = self._judge_rng.random() < feed.feedback
        if variant is None or not (judged or rated):
            return
        answer = str(response.json()["choices"][0]["message"]["content"])
        thumbs = (scripted(answer) or (0.0, ""))[1]
        assert self._client is not None
        try:
            if judged:
                exchange = {"variant": variant, "messages": self._request["messages"], "response": answer}
                self._client.post(f"{feed.url}/v1/exchanges", json=exchange).raise_for_status()
                with self._lock:
                    self._judged[backend] += 1
            if rated and thumbs:
                vote = {"variant": variant, "value": thumbs}
                self._client.post(f"{feed.url}/v1/feedback", json=vote).raise_for_status()
                with self._lock:
                    self._thumbs[f"{backend}/{thumbs}"] += 1
        except httpx.HTTPError:
            with self._lock:
                self._judge_errors += 1
