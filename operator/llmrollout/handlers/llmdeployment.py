"""Kopf handlers for LLMDeployment: a timer that runs the reconciler, a probe that says whether every
object is still being reconciled. No decisions here (rollout), no reconcile steps (reconciler)."""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import kopf

from llmrollout import rollout
from llmrollout.api import GROUP, PLURAL, VERSION
from llmrollout.handlers import telemetry
from llmrollout.handlers.gates import GoldenSetRuns
from llmrollout.handlers.health import Health
from llmrollout.handlers.leader import LeaderElector
from llmrollout.handlers.reads import MetricsReads
from llmrollout.handlers.reconciler import (
    CONFLICT_DELAY_SECONDS,
    Clients,
    ObjectGoneError,
    ReconcileError,
    interval_seconds,
    reconcile,
)
from llmrollout.k8s import LeaseRef, api_client

RESOURCE = (GROUP, VERSION, PLURAL)
# How often each LLMDeployment is looked at; decisions still follow spec.strategy.interval.
TICK_SECONDS = float(os.environ.get("LLMROLLOUT_TICK_SECONDS", "1"))
MAX_BACKOFF_SECONDS: Final = 60.0
logger = logging.getLogger(__name__)


@dataclass
class _Latest:
    """Per object: our last write's result, and the resourceVersions it superseded. Kopf's copy
    lags behind our own writes by a watch event; deciding from a copy we know is stale would only
    buy a 409."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    objects: dict[str, tuple[frozenset[str], Mapping[str, Any]]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def base(self, uid: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        with self.lock:
            superseded, written = self.objects.get(uid, (frozenset(), body))
        return written if body["metadata"]["resourceVersion"] in superseded else body

    def wrote(self, uid: str, superseded: tuple[str, ...], written: Mapping[str, Any]) -> None:
        with self.lock:
            before, _ = self.objects.get(uid, (frozenset(), written))
            # A few versions back suffice: the watch lags by an event or two, not by many.
            self.objects[uid] = (frozenset([*sorted(before)[-8:], *superseded]), written)

    def forget(self, uid: str) -> None:
        with self.lock:
            self.objects.pop(uid, None)
            self.failures.pop(uid, None)

    def failure_is_new(self, uid: str, message: str | None) -> bool:
        """True when `message` differs from the last failure said for this object (None: success)."""
        with self.lock:
            previous = self.failures.pop(uid, None)
            if message is not None:
                self.failures[uid] = message
            return message is not None and message != previous


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Kopf's bookkeeping goes to annotations under our prefix, so status holds only our state.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Events come from decisions (kopf.event below), not from Kopf's log lines: a retried failure
    # would otherwise post one per attempt. Failures get one ReconcileFailed Event per new cause.
    settings.posting.level = logging.CRITICAL
    settings.posting.reporting_component = "llmrollout"
    settings.watching.server_timeout = 300
    memo.http = httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0))
    memo.api = api_client()
    memo.health = Health()
    memo.latest = _Latest()
    memo.reads = MetricsReads()
    memo.gates = GoldenSetRuns()
    # `llmrollout run --leader-election` puts the Lease to hold in memo; without it, this
    # process acts alone (a single replica, a test).
    election: LeaseConfig | None = getattr(memo, "election", None)
    memo.elector = None
    telemetry.LEADER.set(1)
    if election is not None:
        memo.elector = LeaderElector(memo.api, election.lease, election.identity, election.duration_seconds)
        memo.elector.attempt()
        memo.elector.start()


@kopf.on.cleanup()
def close_clients(memo: kopf.Memo, **_: Any) -> None:
    if memo.elector is not None:
        memo.elector.stop()
    memo.reads.close()
    memo.gates.close()
    memo.http.close()
    memo.api.close()


@dataclass(frozen=True)
class LeaseConfig:
    lease: LeaseRef
    identity: str
    duration_seconds: int


def _leading(memo: kopf.Memo) -> bool:
    elector: LeaderElector | None = getattr(memo, "elector", None)
    return elector is None or elector.is_leader()


# The apiserver refuses an Event message over 1024 bytes (not characters), and Kopf's own cut counts
# characters: a message with a multi-byte character ("…" from truncate) would be lost whole.
EVENT_MESSAGE_BYTES = 1000


def event_message(message: str) -> str:
    """`message` in at most EVENT_MESSAGE_BYTES of UTF-8, its start and its end kept."""
    encoded = message.encode()
    if len(encoded) <= EVENT_MESSAGE_BYTES:
        return message
    head = encoded[: EVENT_MESSAGE_BYTES * 2 // 3].decode(errors="ignore")
    tail = encoded[-(EVENT_MESSAGE_BYTES // 3 - 8) :].decode(errors="ignore")
    return f"{head} [...] {tail}"


def _key(namespace: str | None, name: str | None) -> str:
    return f"{namespace}/{name}"


@kopf.timer(*RESOURCE, interval=TICK_SECONDS, sharp=True)
def tick(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    uid: str,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    assert namespace is not None, "LLMDeployment is a namespaced resource"
    retry: int = kwargs.get("retry", 0)
    key = _key(namespace, name)
    health: Health = memo.health
    if not _leading(memo):
        # A standby only watches; the leader reconciles and answers for staleness.
        health.forget(key)
        return
    latest: _Latest = memo.latest
    # A snapshot: Kopf's body is a live view that a watch event may change mid-reconcile.
    base = copy.deepcopy(dict(latest.base(uid, body)))
    interval = interval_seconds(base.get("spec") or {})
    health.attempted(key, interval)

    def post(event: rollout.Event) -> None:
        telemetry.DECISIONS.labels(event.reason).inc()
        level = logging.INFO if event.type == "Normal" else logging.WARNING
        logger.log(level, "%s %s: %s", key, event.reason, event.message)
        kopf.event(body, type=event.type, reason=event.reason, message=event_message(event.message))

    try:
        clients = Clients(
            memo.api, memo.http, tuple(getattr(memo, "prometheus_allowlist", ())), memo.reads, memo.gates
        )
        result = reconcile(clients, base, datetime.now(UTC), post)
    except ObjectGoneError:
        health.forget(key)
        latest.forget(uid)
        return
    except ReconcileError as error:
        telemetry.RECONCILES.labels("error").inc()
        telemetry.RECONCILE_ERRORS.labels(error.reason).inc()
        # Never let Kopf drop the object: every failure is temporary, retried with backoff.
        # Backoff doubles per failure, up to one interval (so a recovered cluster is noticed within
        # one) and at most a minute.
        backoff = min(MAX_BACKOFF_SECONDS, max(interval, 1.0), 2.0 ** (retry + 1))
        delay = error.delay if error.delay is not None else backoff
        if delay > CONFLICT_DELAY_SECONDS and latest.failure_is_new(uid, str(error)):
            post(rollout.Event("Warning", "ReconcileFailed", f"{error}; retrying in {delay:.0f}s"))
        raise kopf.TemporaryError(str(error), delay=delay) from error
    if result.written is not None:
        latest.wrote(uid, result.superseded, result.written)
    latest.failure_is_new(uid, None)
    health.succeeded(key, interval)
    telemetry.RECONCILES.labels("success").inc()


@kopf.on.event(*RESOURCE)
def forget_deleted(
    type: str | None, namespace: str | None, name: str | None, uid: str | None, memo: kopf.Memo, **_: Any
) -> None:
    if type == "DELETED":
        memo.health.forget(_key(namespace, name))
        memo.reads.forget(_key(namespace, name))
        memo.gates.forget(_key(namespace, name))
        if uid is not None:
            memo.latest.forget(uid)


@kopf.on.probe(id="reconciled")
def reconciled(memo: kopf.Memo, **_: Any) -> str:
    """Fails the liveness endpoint while some object has gone 3 intervals without a successful
    reconcile (a retried failure, a stuck timer)."""
    health: Health | None = getattr(memo, "health", None)
    if health is None or not _leading(memo):
        return "standby"
    stale = health.describe_stale()
    if stale:
        raise kopf.PermanentError(stale)
    return "ok"
