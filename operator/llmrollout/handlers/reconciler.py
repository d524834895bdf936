"""One reconcile of one LLMDeployment, as a plain function: the Kopf timer calls it, and so can any
other scheduler. No Kopf here; failures are ReconcileErrors that say how long to wait.

Crash-consistent order: a decision is written to status first (fenced by the resourceVersion it was
made from), then the route is patched, then status records the weights as applied. Whatever dies
in between, the next reconcile finds the decision in status and finishes applying it: a route
that does not yet carry the decided weights is not drift. Events follow the status write that
records their decision, so a refused write never leaves an Event for a decision that did not last.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from llmrollout import rollout
from llmrollout.analysis.observations import Window
from llmrollout.api import (
    TRAFFIC_ROUTED,
    InvalidSpecError,
    LLMDeploymentSpec,
    LLMDeploymentStatus,
    Phase,
    parse_duration,
    parse_spec,
    with_condition,
)
from llmrollout.api.status import MAX_MESSAGE, truncate
from llmrollout.eval.gate import run_golden_set_gate
from llmrollout.handlers import telemetry
from llmrollout.handlers.credentials import CredentialsError, prometheus_credentials
from llmrollout.handlers.gates import GoldenSetRuns
from llmrollout.handlers.reads import Batched, MetricsReads
from llmrollout.k8s import (
    ACTION_ANNOTATION,
    ACTIONS,
    LLMDeploymentNotFoundError,
    ServiceWatch,
    StaleObjectError,
    clear_action,
    config_map_value,
    describe_api_error,
    missing_services,
    secret_value,
    write_status,
)
from llmrollout.metrics import (
    MetricsError,
    TemplateError,
    check_template,
    provider_for,
    variant_selector,
)
from llmrollout.metrics.batch import BatchMember, batch_key, read_batch
from llmrollout.metrics.factory import INGESTION_DELAY_SECONDS
from llmrollout.metrics.prometheus import PrometheusProvider, lookback_seconds
from llmrollout.routers import (
    RouteNotFoundError,
    RouteNotOptedInError,
    RouterError,
    TrafficRouter,
    backends_of,
    describe_drift,
    drift,
    router_for,
)

DEFAULT_INTERVAL_SECONDS: Final = 60.0
# A 409 means our copy was stale: the next attempt reads the newer one, so it can come soon.
CONFLICT_DELAY_SECONDS: Final = 1.0
# Test hook: exit the process right after the route write of a reconcile that handled this action
# ("any" for every route write), to show that a crash between the writes loses nothing.
FAULT_EXIT_AFTER_ROUTE_WRITE: Final = "LLMROLLOUT_FAULT_EXIT_AFTER_ROUTE_WRITE"
# Likewise, but a SIGTERM to this process (a rolling update), and the tick goes on: a shutdown
# that lands mid-tick either lets it finish or abandons it, and either leaves a consistent state.
FAULT_TERM_AFTER_ROUTE_WRITE: Final = "LLMROLLOUT_FAULT_TERM_AFTER_ROUTE_WRITE"
# The analysis block is free-form (per-SLO results, the sequential tests' state); its messages are
# capped like every other message, and its size as a whole is checked before a write.
MAX_ANALYSIS_BYTES: Final = 32 * 1024
# Checked specs kept (one per LLMDeployment and spec version in use; a few thousand objects fit).
SPEC_CACHE_SIZE: Final = 4096
# The series check asks which series Prometheus holds when it asks: a scrape still being stored is at
# worst found by the next check, while reading a second in the past (as the analysis windows do, so
# that no window misses its newest samples) misses every series first scraped within that second.
CHECK_QUERY_OFFSET: Final = 0.0

Post = Callable[[rollout.Event], None]


class ReconcileError(Exception):
    """This reconcile did not finish; retry after `delay` seconds (None: the caller's backoff).
    `reason` is a short CamelCase word for metrics."""

    def __init__(self, message: str, delay: float | None = None, reason: str = "Failed") -> None:
        super().__init__(message)
        self.delay = delay
        self.reason = reason


class ObjectGoneError(Exception):
    """The object was deleted while being reconciled: nothing left to do."""


@dataclass(frozen=True)
class Clients:
    api: client.ApiClient
    http: httpx.Client
    # Prometheus hosts this operator may query ("host", "host:port", "*.suffix"); empty: any. An
    # LLMDeployment is a tenant's, the operator's network position is not: without a list, a spec
    # could make the operator fetch any internal URL.
    prometheus_allowlist: tuple[str, ...] = ()
    # Where window reads run; None reads in the caller's thread (tests, a scheduler of its own).
    reads: MetricsReads | None = None
    # Where golden-set gates run; None runs them in the caller's thread.
    gates: GoldenSetRuns | None = None
    # The Services a watch has seen; None asks the API on every look.
    services: ServiceWatch | None = None


def _host_of(address: str) -> str:
    try:
        return truncate(httpx.URL(address).host or "(none)", 253)
    except (httpx.InvalidURL, TypeError):
        return "(unparsable address)"


def _server_of(address: str) -> str:
    """host:port: the unit a read pool serves, so that two Prometheus servers on one host (a slow one
    beside a healthy one) never share workers."""
    try:
        url = httpx.URL(address)
        return truncate(f"{url.host or '(none)'}:{url.port or (443 if url.scheme == 'https' else 80)}", 253)
    except (httpx.InvalidURL, TypeError):
        return "(unparsable address)"


def prometheus_allowed(address: str, allowlist: Sequence[str]) -> bool:
    """Whether `address` (a base URL) names a host the allowlist admits; an empty list admits all."""
    if not allowlist:
        return True
    try:
        url = httpx.URL(address)
    except (httpx.InvalidURL, TypeError):
        return False
    host = (url.host or "").lower().rstrip(".")
    port = url.port or (443 if url.scheme == "https" else 80)
    for entry in (e.strip().lower() for e in allowlist):
        name, _, wanted_port = entry.partition(":")
        if wanted_port and wanted_port != str(port):
            continue
        if name == host or (name.startswith("*.") and host.endswith(name[1:])):
            return True
    return False


@dataclass(frozen=True)
class Reconciled:
    status: LLMDeploymentStatus
    written: Mapping[str, Any] | None  # the object as our last write left it, if we wrote
    superseded: tuple[str, ...] = ()  # resourceVersions our writes moved past
    spec: LLMDeploymentSpec | None = None  # the spec decided on; None when it is invalid
    # A status decided but not written (evidence only), and the resourceVersion it builds on: the
    # next reconcile of that same version decides from it.
    unwritten: LLMDeploymentStatus | None = None
    resource_version: str | None = None


def interval_seconds(raw_spec: Mapping[str, Any]) -> float:
    """spec.strategy.interval in seconds, or the default when the spec does not say or is broken."""
    try:
        return parse_duration((raw_spec.get("strategy") or {}).get("interval", "1m")).total_seconds()
    except (ValueError, AttributeError):
        return DEFAULT_INTERVAL_SECONDS


def reconcile(
    clients: Clients,
    obj: Mapping[str, Any],
    now: datetime,
    post: Post,
    unwritten: LLMDeploymentStatus | None = None,
) -> Reconciled:
    """Decide from `obj` (spec, status, the action annotation) and make the cluster follow.
    `unwritten` is what an earlier reconcile of this very resourceVersion decided but did not write
    (evidence only, see _StatusWriter); it is decided from instead of obj's status."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    generation = meta.get("generation")
    persisted = LLMDeploymentStatus.model_validate(obj.get("status") or {})
    current = unwritten if unwritten is not None else persisted
    writer = _StatusWriter(
        clients.api,
        namespace,
        name,
        meta["resourceVersion"],
        persisted,
        interval_seconds(obj.get("spec") or {}),
        current,
    )
    try:
        spec = checked_spec(obj.get("spec") or {}, clients.http, namespace)
    except InvalidSpecError as error:
        outcome = rollout.reject("InvalidSpec", truncate(str(error), MAX_MESSAGE), current, generation, now)
        writer.write(outcome.status)
        _post_all(post, outcome.events)
        return writer.result()
    writer.spec = spec

    requested = (meta.get("annotations") or {}).get(ACTION_ANNOTATION)
    action: rollout.Action | None = requested if requested in ACTIONS else None
    if requested is not None and action is None:
        message = (
            f"annotation {ACTION_ANNOTATION}={truncate(requested)!r} ignored; use {' or '.join(ACTIONS)}"
        )
        post(rollout.Event("Warning", "UnknownAction", message))
        _clear(clients, namespace, name, requested)

    observation = _observe(clients, spec, current, namespace, now, key=f"{namespace}/{name}")
    preflight = _preflight(clients, spec, current, namespace, now, key=f"{namespace}/{name}")
    gate = _gate(clients, spec, current, namespace, key=f"{namespace}/{name}")
    outcome = rollout.reconcile(spec, current, generation, now, observation, action, preflight, gate)
    applied = current.weights_on_route()
    routed = (c := current.condition(TRAFFIC_ROUTED)) is not None and c.status == "True"
    # The routing object is read when the decided weights are not yet confirmed on it, after a
    # failure, and once per analysis (to catch drift), not on every tick. A decision found
    # unconfirmed (the process died between its writes) also reads it: the route may carry it.
    settled = current.weights == applied
    if outcome.status.weights == applied and settled and routed and observation is None:
        writer.write(outcome.status, force=bool(outcome.events))
        _post_all(post, outcome.events)
        _clear(clients, namespace, name, action)
        return writer.result()

    try:
        router, actual = _prepare_route(clients, spec, namespace, name, outcome.status.weights)
    except _NotRoutedError as failure:
        held, stands = _not_routed(current, outcome, failure, now)
        writer.write(held.status, force=bool(held.events))
        _post_all(post, held.events)
        if stands:
            _clear(clients, namespace, name, action)
        return writer.result()

    _decide_and_route(writer, router, actual, applied, outcome, now, post, action)
    _clear(clients, namespace, name, action)
    return writer.result()


def _decide_and_route(
    writer: _StatusWriter,
    router: TrafficRouter,
    actual: dict[str, int],
    applied: dict[str, int],
    outcome: rollout.Outcome,
    now: datetime,
    post: Post,
    action: str | None,
) -> None:
    """Writes the decision, puts its weights on the route, then records them as applied.

    The decision (weights and any user action) is durable before the route moves. A route that
    carries the decided weights already (router none, or a decision that moves no weight) is recorded
    in the same write: there is nothing to move, so no second write."""
    intended = outcome.status.weights
    decided = _on_route(outcome.status, now) if actual == intended else outcome.status
    writer.write(decided, force=bool(outcome.events) or action is not None)
    _post_all(post, outcome.events)
    _observe_rollout_end(outcome, now)
    if actual != intended:
        try:
            router.set_weights(intended)
        except (RouterError, ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            failed, _ = _not_routed(writer.status, outcome, _as_not_routed(error), now, hold=False)
            writer.write(failed.status)
            _post_all(post, failed.events[len(outcome.events) :])
            return
        _fault_hook(action)
        # Drift only when the route had been confirmed at the decided weights and is not now: a
        # decision still being applied (a crash between the writes) is finished, not reported.
        if applied == intended and (changed := drift(applied, actual)):
            message = f"weights changed outside llmrollout ({describe_drift(changed)}); restored them"
            post(rollout.Event("Warning", "WeightsDrifted", message))
    routed = _on_route(writer.status, now)
    started = routed.step_started_at
    if intended not in (actual, applied) and started is not None and started < now:
        # A step decided by an earlier reconcile (one that died before the route write) begins now,
        # when its traffic does: its interval and its requests are counted at its own weights.
        routed = routed.model_copy(update={"step_started_at": now, "step_requests": {}})
    writer.write(routed)


def _on_route(status: LLMDeploymentStatus, now: datetime) -> LLMDeploymentStatus:
    """`status` with its weights recorded as the route's (appliedWeights, TrafficRouted=True)."""
    summary = ", ".join(f"{v} {w}%" for v, w in status.weights.items() if w)
    conditions = with_condition(
        status.conditions, TRAFFIC_ROUTED, "True", "WeightsSet", summary, now, status.observed_generation
    )
    return status.model_copy(update={"applied_weights": dict(status.weights), "conditions": conditions})


def status_body(status: LLMDeploymentStatus) -> dict[str, Any]:
    """The status as written: JSON, no nulls (the schema has no nullable fields), bounded."""
    body: dict[str, Any] = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    body["analysis"] = bounded_analysis(dict(body.get("analysis") or {}))
    return body


def bounded_analysis(analysis: dict[str, Any]) -> dict[str, Any]:
    """Messages in the analysis block capped; a block still over MAX_ANALYSIS_BYTES keeps only
    the sequential tests' state (needed to decide) and says that the rest was dropped."""
    capped: dict[str, Any] = _cap_strings(analysis)
    if len(repr(capped)) <= MAX_ANALYSIS_BYTES:
        return capped
    kept: dict[str, Any] = {k: capped[k] for k in ("method", "verdict", "sequential") if k in capped}
    kept["reason"] = f"analysis details dropped: over {MAX_ANALYSIS_BYTES} bytes"
    return kept


def _cap_strings(node: Any) -> Any:
    if isinstance(node, str):
        return node if len(node) <= MAX_MESSAGE else truncate(node, MAX_MESSAGE)
    if isinstance(node, dict):
        return {key: _cap_strings(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_cap_strings(item) for item in node]
    return node


def decision_state(status: LLMDeploymentStatus) -> dict[str, Any]:
    """What matters in a status: everything but the evidence of the looks (the analysis, the plan,
    the window's end and its request counts) and the conditions' wording. A look that changes only
    the evidence need not be written at once: the evidence is reproducible from Prometheus (exact
    window reads), and lastAnalysisAt, stepRequests and the analysis are written together, so a
    restart re-reads the windows since the last written look as one longer window."""
    state = status.model_dump(exclude=_EVIDENCE)
    state["conditions"] = sorted(
        (c.type, c.status, c.reason, c.observed_generation) for c in status.conditions
    )
    return state


_EVIDENCE: Final = {"last_analysis_at", "analysis", "plan", "step_requests", "conditions"}


class _StatusWriter:
    """Writes status fenced by the resourceVersion the decision was made from, skipping no-ops, and
    deferring writes that change only evidence until an interval's worth has gathered."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        resource_version: str,
        persisted: LLMDeploymentStatus,
        interval: float,
        status: LLMDeploymentStatus | None = None,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._name = name
        self._resource_version = resource_version
        self._persisted = persisted
        self._interval = timedelta(seconds=interval)
        self.status = status if status is not None else persisted
        self._written: Mapping[str, Any] | None = None
        self._superseded: list[str] = []
        self.spec: LLMDeploymentSpec | None = None

    def _deferrable(self, status: LLMDeploymentStatus) -> bool:
        persisted = self._persisted
        if decision_state(status) != decision_state(persisted):
            return False
        if status.last_analysis_at is None or persisted.last_analysis_at is None:
            return status.last_analysis_at == persisted.last_analysis_at
        return status.last_analysis_at - persisted.last_analysis_at < self._interval

    def write(self, status: LLMDeploymentStatus, force: bool = False) -> None:
        """Persists `status`, unless it equals what is written, or (without `force`: no Event says
        a decision) differs from it only in evidence gathered within the last interval."""
        if status == self._persisted or (not force and self._deferrable(status)):
            self.status = status
            return
        where = f"LLMDeployment {self._namespace}/{self._name}"
        try:
            written = write_status(
                self._api, self._namespace, self._name, self._resource_version, status_body(status)
            )
        except StaleObjectError as error:
            raise ReconcileError(
                f"{error}; deciding again", delay=CONFLICT_DELAY_SECONDS, reason="Conflict"
            ) from error
        except LLMDeploymentNotFoundError as error:
            raise ObjectGoneError(str(error)) from error
        except ApiException as error:
            raise ReconcileError(
                f"status write for {where} refused: {describe_api_error(error)}", reason="StatusWriteRefused"
            ) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ReconcileError(
                f"status write for {where} failed: Kubernetes API unreachable: {truncate(str(error))}",
                reason="APIUnreachable",
            ) from error
        self._written = written
        self._superseded.append(self._resource_version)
        self._resource_version = written["metadata"]["resourceVersion"]
        self.status = status
        self._persisted = status

    def result(self) -> Reconciled:
        unwritten = None if self.status == self._persisted else self.status
        return Reconciled(
            self.status, self._written, tuple(self._superseded), self.spec, unwritten, self._resource_version
        )


class _SpecCache:
    """Specs already checked, by their canonical JSON and namespace. Each look used to parse and check
    its object's spec anew (5% of the operator's CPU at a thousand rolling objects), though a spec
    changes only when a user changes it. The models are frozen, so one may serve every look."""

    def __init__(self, size: int = SPEC_CACHE_SIZE) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._checked: OrderedDict[tuple[str, str], LLMDeploymentSpec | InvalidSpecError] = OrderedDict()

    def get(self, raw: Mapping[str, Any], http: httpx.Client, namespace: str) -> LLMDeploymentSpec:
        try:
            key = (namespace, json.dumps(raw, sort_keys=True, separators=(",", ":")))
        except (TypeError, ValueError):
            return _check_spec(raw, http, namespace)  # not JSON (never from the apiserver): no caching
        with self._lock:
            found = self._checked.get(key)
            if found is not None:
                self._checked.move_to_end(key)
        if found is None:
            try:
                found = _check_spec(raw, http, namespace)
            except InvalidSpecError as error:
                found = error
            with self._lock:
                self._checked[key] = found
                while len(self._checked) > self._size:
                    self._checked.popitem(last=False)
        if isinstance(found, InvalidSpecError):
            raise InvalidSpecError(str(found))
        return found


def checked_spec(raw: Mapping[str, Any], http: httpx.Client, namespace: str) -> LLMDeploymentSpec:
    """The spec, or InvalidSpecError for what the CRD schema cannot refuse."""
    return _SPECS.get(raw, http, namespace)


def _check_spec(raw: Mapping[str, Any], http: httpx.Client, namespace: str) -> LLMDeploymentSpec:
    spec = parse_spec(raw)
    for index, slo in enumerate(spec.slos.custom):
        try:
            check_template(slo.query)
        except TemplateError as error:
            raise InvalidSpecError(f"spec.slos.custom[{index}].query: {error}") from error
    try:
        # Built once here (no I/O) so that a spec it refuses (e.g. metrics.labels naming the variant
        # label) is an InvalidSpec condition, not an error in every read.
        provider_for(spec.metrics, http, namespace=namespace)
    except (MetricsError, ValueError) as error:
        raise InvalidSpecError(f"spec.metrics: {truncate(str(error), MAX_MESSAGE)}") from error
    return spec


_SPECS: Final = _SpecCache()


def _observe(
    clients: Clients,
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    namespace: str,
    now: datetime,
    key: str = "",
) -> rollout.Observation | None:
    """The due window's observation; None when no window is due or its read is still running."""
    due = rollout.due_window(spec, status, now)
    if due is None:
        return None
    start, end = due
    address = spec.metrics.prometheus.address if spec.metrics.prometheus is not None else ""
    if not prometheus_allowed(address, clients.prometheus_allowlist):
        allowed = truncate(", ".join(clients.prometheus_allowlist))
        return rollout.Observation(
            start,
            end,
            unavailable=f"Prometheus host {_host_of(address)} is not in this operator's allowlist"
            f" ({allowed}); ask its administrators to add it",
        )
    variants = rollout.watched(spec, status)

    def read() -> rollout.Observation:
        return read_window(clients, spec, namespace, variants, start, end)

    if clients.reads is None:
        return read()
    # A window must be decided on within its interval, however slow Prometheus is (and 5s at least).
    deadline = max(5.0, min(spec.strategy.interval.total_seconds(), 60.0))
    batched = batched_read(clients.http, spec, namespace, variants, start, end)
    return clients.reads.observe(key or namespace, _server_of(address), start, end, deadline, read, batched)


def _gate(
    clients: Clients, spec: LLMDeploymentSpec, status: LLMDeploymentStatus, namespace: str, key: str
) -> rollout.GateReport | None:
    """The golden-set gate of the candidate waiting for it, run off the reconcile thread."""
    candidate = rollout.gate_pending(spec, status)
    golden = spec.evaluation.golden_set if spec.evaluation is not None else None
    if candidate is None or golden is None:
        return None
    stable = rollout.serving_stable(spec, status)

    def run(progress: Callable[[int, int], None]) -> dict[str, object]:
        items = config_map_value(clients.api, namespace, golden.config_map_ref.name, golden.key)
        with httpx.Client() as http:
            gated = run_golden_set_gate(
                spec,
                namespace,
                items,
                http,
                candidate=candidate,
                stable=stable,
                read_secret=lambda name, key: secret_value(clients.api, namespace, name, key),
                progress=progress,
            )
        return gated.decision.to_status()

    if clients.gates is None:
        try:
            return rollout.GateReport(candidate, decision=run(lambda done, total: None))
        except Exception as error:  # not a verdict: the state machine retries within its limit
            return rollout.GateReport(candidate, error=truncate(f"{type(error).__name__}: {error}"))
    attempt = f"{status.evaluation.get('startedAt')}#{status.evaluation.get('attempts', 0)}"
    return clients.gates.poll(key, candidate, attempt, run)


def _preflight(
    clients: Clients,
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    namespace: str,
    now: datetime,
    key: str,
) -> rollout.Preflight | None:
    """When a rollout is about to start: which series of the serving version and the candidate
    Prometheus lacks (a series seen within the provider's look-back counts as present)."""
    candidate = rollout.desired_candidate(spec, status)
    if candidate is None or candidate == status.candidate or spec.metrics.prometheus is None:
        return None
    # Also on the first reconcile of a new object and while a golden set is scored: the check must have
    # answered before the reconcile that would move traffic, whichever that is.
    address = spec.metrics.prometheus.address
    if not prometheus_allowed(address, clients.prometheus_allowlist):
        return rollout.Preflight(
            {}, unavailable=f"Prometheus host {_host_of(address)} is not in the allowlist"
        )
    stable = rollout.serving_stable(spec, status)
    if clients.reads is None:
        return check_series(clients, spec, namespace, [stable, candidate], now)
    start, end = _check_window(spec, now)
    variants = [stable, candidate]
    batched = batched_read(clients.http, spec, namespace, variants, start, end, CHECK_QUERY_OFFSET)
    observation = clients.reads.observe(
        f"{key}#preflight",
        _server_of(address),
        # The check's window moves with every tick; a check in flight is told apart by the scrape
        # interval it was asked in, so that a slow answer is still picked up on a later tick.
        _aligned(spec, now),
        end,
        preflight_deadline(spec),
        lambda: read_window(clients, spec, namespace, variants, start, end, CHECK_QUERY_OFFSET),
        batched,
        reuse=lambda started, answer: _still_found(spec, now, stable, candidate, started, answer),
    )
    if observation is None:
        return rollout.Preflight({}, checking=True)
    return _as_preflight(spec, observation)


def _still_found(
    spec: LLMDeploymentSpec,
    now: datetime,
    stable: str,
    candidate: str,
    started: datetime,
    answer: rollout.Observation,
) -> bool:
    """Whether a check asked in an earlier scrape interval still answers this one: only when it lets
    the rollout start (a series then missing may have arrived since: ask again) and was asked within
    the look-back (a series seen that recently counts as present anyway). Without this a check whose
    answers take longer than a scrape interval (a loaded Prometheus, a fleet checked at once) would
    be asked again forever and the rollout would never start."""
    report = rollout.metrics_report(spec, _as_preflight(spec, answer), stable, candidate)
    if report.blocking is not None:
        return False
    assert spec.metrics.prometheus is not None
    lookback = lookback_seconds(spec.metrics.prometheus.scrape_interval.total_seconds())
    return (_aligned(spec, now) - started).total_seconds() <= lookback


def preflight_deadline(spec: LLMDeploymentSpec) -> float:
    """How long the check may wait for Prometheus before MetricsAvailable=False names it: an interval,
    as a window's read gets (so a hung server is named within about two intervals), but 10s at least,
    for a healthy Prometheus slow to answer an object's first queries, and 30s at most, the
    client's own bound for a window's queries."""
    return min(30.0, max(10.0, spec.strategy.interval.total_seconds()))


def check_series(
    clients: Clients, spec: LLMDeploymentSpec, namespace: str, variants: list[str], now: datetime
) -> rollout.Preflight:
    """Which series of `variants` Prometheus has and lacks at `now` (a series seen within the
    provider's look-back counts as present): what MetricsReady and `llmrollout check` report."""
    start, end = _check_window(spec, now)
    return _as_preflight(
        spec, read_window(clients, spec, namespace, variants, start, end, CHECK_QUERY_OFFSET)
    )


def _check_window(spec: LLMDeploymentSpec, now: datetime) -> tuple[datetime, datetime]:
    """The check's window: one scrape interval ending at `now` itself, read at `now` (see
    CHECK_QUERY_OFFSET). A series counts as present when it has a sample in the window or within
    the look-back before it, so whether it moved does not matter, only whether Prometheus holds it.

    Not the analysis windows' edges (ends on multiples of the interval, read a second earlier):
    those hide up to a scrape interval and a second of the newest samples, and a new LLMDeployment's
    servers, scraped for the first time a moment before it was created, read as missing there.
    """
    return now - timedelta(seconds=_check_step(spec)), now


def _aligned(spec: LLMDeploymentSpec, now: datetime) -> datetime:
    step = _check_step(spec)
    return datetime.fromtimestamp(math.floor(now.timestamp() / step) * step, UTC)


def _check_step(spec: LLMDeploymentSpec) -> float:
    assert spec.metrics.prometheus is not None
    return max(spec.metrics.prometheus.scrape_interval.total_seconds(), 1.0)


def _as_preflight(spec: LLMDeploymentSpec, observation: rollout.Observation) -> rollout.Preflight:
    window = observation.window
    if window is None:
        return rollout.Preflight({}, unavailable=observation.unavailable or "no answer")
    return rollout.Preflight(
        missing={v: dict(w.missing) for v, w in window.variants.items()},
        found={v: dict(w.found) for v, w in window.variants.items()},
        selectors={v: variant_selector(spec.metrics, v) for v in window.variants},
        problems=window.problems,
    )


def read_window(
    clients: Clients,
    spec: LLMDeploymentSpec,
    namespace: str,
    variants: list[str],
    start: datetime,
    end: datetime,
    query_offset: float = INGESTION_DELAY_SECONDS,
) -> rollout.Observation:
    """One window read alone, by the LLMDeployment's own provider (every read with
    LLMROLLOUT_BATCH_READS=0; bench/scale compares it with batched_read's)."""
    auth = spec.metrics.prometheus.auth if spec.metrics.prometheus is not None else None
    try:
        credentials = prometheus_credentials(
            auth, namespace, lambda name, key: secret_value(clients.api, namespace, name, key)
        )
    except CredentialsError as error:
        return rollout.Observation(start, end, unavailable=truncate(str(error)))
    try:
        provider = provider_for(
            spec.metrics,
            clients.http,
            namespace=namespace,
            credentials=credentials,
            query_offset=query_offset,
            fields=rollout.window_fields(spec),
        )
        with telemetry.METRICS_READ_SECONDS.time():
            window = provider.read(variants, start.timestamp(), end.timestamp(), spec.slos.custom)
    except MetricsError as error:
        return _observation(start, end, error)
    return _observation(start, end, window)


def _observation(start: datetime, end: datetime, read: Window | MetricsError) -> rollout.Observation:
    if isinstance(read, MetricsError):
        # Prometheus' own text is the server's to choose: cut it before it reaches status or Events.
        return rollout.Observation(start, end, unavailable=truncate(str(read)))
    if read.problems:
        read = dataclasses.replace(read, problems=tuple(truncate(p) for p in read.problems))
    return rollout.Observation(start, end, window=read)


@dataclass(frozen=True)
class _WindowRead:
    """One LLMDeployment's window in a batch (see metrics/batch.py)."""

    member: BatchMember
    start: datetime
    end: datetime


def batched_read(
    http: httpx.Client,
    spec: LLMDeploymentSpec,
    namespace: str,
    variants: Sequence[str],
    start: datetime,
    end: datetime,
    query_offset: float = INGESTION_DELAY_SECONDS,
) -> Batched | None:
    """How this window read joins others on the same Prometheus, preset and label keys; None when it
    reads alone (a provider that does not batch, or a spec the read itself will report on).
    Members of one `group` are read by `run([member, ...])`, one observation per member."""
    if end <= start or spec.metrics.prometheus is None or spec.metrics.prometheus.auth is not None:
        # With credentials, a read needs its Secret first (read in the read's own thread): such a
        # window is read alone, so that no query ever mixes two tenants' credentials.
        return None
    try:
        provider = provider_for(
            spec.metrics,
            http,
            namespace=namespace,
            query_offset=query_offset,
            fields=rollout.window_fields(spec),
        )
    except (MetricsError, ValueError):
        return None
    if not isinstance(provider, PrometheusProvider) or (group := batch_key(provider)) is None:
        return None
    member = BatchMember(
        provider, tuple(variants), start.timestamp(), end.timestamp(), tuple(spec.slos.custom)
    )
    return Batched(group, _WindowRead(member, start, end), _read_batch)


def _read_batch(reads: Sequence[_WindowRead]) -> list[rollout.Observation]:
    with telemetry.METRICS_READ_SECONDS.time():
        results = read_batch([r.member for r in reads])
    return [_observation(r.start, r.end, result) for r, result in zip(reads, results, strict=True)]


class _NotRoutedError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(truncate(message, MAX_MESSAGE))
        self.reason = reason


def _as_not_routed(error: Exception) -> _NotRoutedError:
    if isinstance(error, RouteNotFoundError):
        return _NotRoutedError("RouteNotFound", str(error))
    if isinstance(error, RouteNotOptedInError):
        return _NotRoutedError("RouteNotOptedIn", str(error))
    if isinstance(error, RouterError):
        return _NotRoutedError("RoutingFailed", str(error))
    if isinstance(error, ApiException):
        return _NotRoutedError("APIError", describe_api_error(error))
    return _NotRoutedError("APIError", f"Kubernetes API unreachable: {truncate(str(error))}")


def _prepare_route(
    clients: Clients, spec: LLMDeploymentSpec, namespace: str, name: str, wanted: dict[str, int]
) -> tuple[TrafficRouter, dict[str, int]]:
    """The router and the weights its object carries now; _NotRoutedError when `wanted` cannot be
    applied (a Service or the route missing, the route not ours to change)."""
    serving = [v.backend_ref.name for v in spec.variants if wanted.get(v.name)]
    try:
        missing = missing_services(clients.api, namespace, serving, watch=clients.services)
        if missing:
            raise _NotRoutedError(
                "ServiceNotFound", f"Service {', '.join(missing)} not found in namespace {namespace}"
            )
        router = router_for(
            spec.traffic,
            namespace=namespace,
            backends=backends_of(spec),
            custom_objects=client.CustomObjectsApi(clients.api),
            weights=wanted,
            owner=name,
        )
        return router, router.read_weights()
    except (RouterError, ApiException, urllib3.exceptions.HTTPError, OSError) as error:
        raise _as_not_routed(error) from error


def _not_routed(
    previous: LLMDeploymentStatus,
    outcome: rollout.Outcome,
    failure: _NotRoutedError,
    now: datetime,
    *,
    hold: bool = True,
) -> tuple[rollout.Outcome, bool]:
    """The status to write when the route cannot take the decided weights, and whether the
    decision stands. A decision that moves traffic is held back until it can be applied, so status
    never decides on traffic the route does not carry; any other decision stands."""
    message = str(failure)
    said = (c := previous.condition(TRAFFIC_ROUTED)) is not None and c.message == message
    events = [] if said else [rollout.Event("Warning", "TrafficNotRouted", message)]
    held = hold and previous.phase not in (None, Phase.FAILED) and outcome.status.weights != previous.weights
    base = previous if held else outcome.status
    generation_seen = outcome.status.observed_generation
    conditions = with_condition(
        base.conditions, TRAFFIC_ROUTED, "False", failure.reason, message, now, generation_seen
    )
    status = base.model_copy(update={"conditions": conditions, "observed_generation": generation_seen})
    return rollout.Outcome(status, events if held else [*outcome.events, *events]), not held


def _observe_rollout_end(outcome: rollout.Outcome, now: datetime) -> None:
    """A promotion or rollback ends a rollout: its duration, from the start in history."""
    ended = next((e.reason for e in outcome.events if e.reason in ("Promoted", "RolledBack")), None)
    started = [h.time for h in outcome.status.history if h.reason in ("RolloutStarted", "RolloutRestarted")]
    if ended is not None and started:
        telemetry.ROLLOUT_SECONDS.labels(ended).observe((now - started[-1]).total_seconds())


def _post_all(post: Post, events: list[rollout.Event]) -> None:
    for event in events:
        post(rollout.Event(event.type, event.reason, truncate(event.message, MAX_MESSAGE)))


def _clear(clients: Clients, namespace: str, name: str, action: str | None) -> None:
    """Clears a handled action request; only after status records its decision."""
    if action is None:
        return
    try:
        clear_action(clients.api, namespace, name, action)
    except ApiException as error:
        message = f"clearing {ACTION_ANNOTATION}: {describe_api_error(error)}"
        raise ReconcileError(message, reason="ActionNotCleared") from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        message = f"clearing {ACTION_ANNOTATION}: {truncate(str(error))}"
        raise ReconcileError(message, reason="APIUnreachable") from error


def _fault_hook(action: str | None) -> None:
    wanted = os.environ.get(FAULT_EXIT_AFTER_ROUTE_WRITE)
    if wanted and wanted in ("any", action):
        os._exit(86)
    wanted = os.environ.get(FAULT_TERM_AFTER_ROUTE_WRITE)
    if wanted and wanted in ("any", action):
        os.kill(os.getpid(), signal.SIGTERM)
