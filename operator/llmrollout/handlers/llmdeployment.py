"""Kopf handlers for LLMDeployment: watch events feed a scheduler that runs the reconciler when each
object next needs it (or, for comparison in benchmarks, a per-object timer does); a probe says
whether every object that is due is still being reconciled. No decisions here (rollout), no
reconcile steps (reconciler)."""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
import kopf

from llmrollout import rollout
from llmrollout.api import GROUP, PLURAL, VERSION, LLMDeploymentStatus
from llmrollout.handlers import telemetry
from llmrollout.handlers.gates import GoldenSetRuns
from llmrollout.handlers.health import Health
from llmrollout.handlers.leader import LeaderElector
from llmrollout.handlers.reads import MetricsReads
from llmrollout.handlers.reconciler import (
    CONFLICT_DELAY_SECONDS,
    Clients,
    ObjectGoneError,
    Reconciled,
    ReconcileError,
    interval_seconds,
    reconcile,
)
from llmrollout.handlers.scheduler import DEFAULT_WORKERS, Scheduler
from llmrollout.handlers.shards import Shard
from llmrollout.k8s import LeaseRef, ServiceWatch, api_client
from llmrollout.k8s.events import EventPoster, involved_object
from llmrollout.k8s.watch import ObjectWatch, Resource
from llmrollout.rollout.wake import POLL

RESOURCE = (GROUP, VERSION, PLURAL)
# Who posts the Events (their "From" in `kubectl describe`).
COMPONENT: Final = "llmrollout"
# The timer scheduler only (`llmrollout run --scheduler timer`, the benchmarks' baseline): how often
# each LLMDeployment is looked at. The default scheduler wakes each object when it is due instead.
TICK_SECONDS = float(os.environ.get("LLMROLLOUT_TICK_SECONDS", "1"))
SCHEDULERS: Final = ("heap", "timer")
MAX_BACKOFF_SECONDS: Final = 60.0
# Bounds the versions kept for `_Latest.came_back` (two looks of a thousand objects and then some).
MAX_OWN_VERSIONS: Final = 4096
# A run that found its window due but its read still running asks again this soon.
REPOLL_SECONDS: Final = 0.5
logger = logging.getLogger(__name__)


@dataclass
class _Latest:
    """Per object: our last write's result, and the resourceVersions it superseded. Kopf's copy
    lags behind our own writes by a watch event; deciding from a copy we know is stale would only
    buy a 409."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    objects: dict[str, tuple[frozenset[str], Mapping[str, Any]]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    # The scheduler's copies: per object key, the body of the latest watch event; failures in a row.
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    # Per uid: a status decided but not written (evidence only) and the resourceVersion it builds on.
    unwritten: dict[str, tuple[str, LLMDeploymentStatus]] = field(default_factory=dict)
    # The resourceVersions our writes produced, not yet seen coming back on the watch: version ->
    # (key, uid).
    own: dict[str, tuple[str, str]] = field(default_factory=dict)

    def unwritten_for(self, uid: str, resource_version: str) -> LLMDeploymentStatus | None:
        """What was decided from this very version and not written; None once the object moved on
        (then the next window runs from the written lastAnalysisAt, as after a restart)."""
        with self.lock:
            kept = self.unwritten.get(uid)
        return kept[1] if kept is not None and kept[0] == resource_version else None

    def keep_unwritten(
        self, uid: str, resource_version: str | None, status: LLMDeploymentStatus | None
    ) -> None:
        with self.lock:
            if status is None or resource_version is None:
                self.unwritten.pop(uid, None)
            else:
                self.unwritten[uid] = (resource_version, status)

    def saw(self, key: str, body: Mapping[str, Any]) -> bool:
        """Records the latest body of `key`; True when the change is not one our own writes made
        (a spec, annotation or status change by someone else, or an object seen for the first time)."""
        meta = body.get("metadata") or {}
        version = meta.get("resourceVersion")
        with self.lock:
            superseded, written = self.objects.get(meta.get("uid", ""), (frozenset(), None))
        latest_write = written is not None and written["metadata"].get("resourceVersion") == version
        # Most events are our own writes coming back: the object our write returned is that very
        # version, so it serves as the copy. Kopf's body is a live view that later events change, so
        # it is copied; our watch's is parsed for this event alone.
        if latest_write and written is not None:
            snapshot = dict(written)
        elif isinstance(body, kopf.Body):
            snapshot = copy.deepcopy(dict(body))
        else:
            snapshot = dict(body)
        with self.lock:
            first = key not in self.bodies
            self.bodies[key] = snapshot
        return first or not (latest_write or version in superseded)

    def body(self, key: str) -> dict[str, Any] | None:
        with self.lock:
            return self.bodies.get(key)

    def failed(self, key: str) -> int:
        """Counts a failure of `key`; returns how many came before it in a row."""
        with self.lock:
            before = self.retries.get(key, 0)
            self.retries[key] = before + 1
            return before

    def forget_key(self, key: str) -> None:
        with self.lock:
            self.bodies.pop(key, None)
            self.retries.pop(key, None)

    def base(self, uid: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        with self.lock:
            superseded, written = self.objects.get(uid, (frozenset(), body))
        return written if body["metadata"]["resourceVersion"] in superseded else body

    def wrote(self, uid: str, superseded: tuple[str, ...], written: Mapping[str, Any]) -> None:
        with self.lock:
            before, _ = self.objects.get(uid, (frozenset(), written))
            # A few versions back suffice: the watch lags by an event or two, not by many.
            self.objects[uid] = (frozenset([*sorted(before)[-8:], *superseded]), written)
            meta = written["metadata"]
            self.own[str(meta.get("resourceVersion"))] = (_key(meta.get("namespace"), meta.get("name")), uid)
            while len(self.own) > MAX_OWN_VERSIONS:  # events the watch never delivered (a re-list)
                del self.own[next(iter(self.own))]

    def came_back(self, version: str, uid: str) -> bool:
        """Whether `version` is one our writes produced (its watch event is then not even parsed):
        the written object becomes the object's copy, as `saw` would make it."""
        with self.lock:
            mine = self.own.pop(version, None)
            if mine is None or mine[1] != uid:
                return False
            key = mine[0]
            _, written = self.objects.get(uid, (frozenset(), None))
            if (
                key not in self.bodies
                or written is None
                or written["metadata"].get("resourceVersion") != version
            ):
                return False  # a later write (or none known): let the event go the usual way
            self.bodies[key] = dict(written)
            return True

    def forget(self, uid: str) -> None:
        with self.lock:
            self.objects.pop(uid, None)
            self.failures.pop(uid, None)
            self.unwritten.pop(uid, None)

    def failure_is_new(self, uid: str, message: str | None) -> bool:
        """True when `message` differs from the last failure said for this object (None: success)."""
        with self.lock:
            previous = self.failures.pop(uid, None)
            if message is not None:
                self.failures[uid] = message
            return message is not None and message != previous


class UnusedDiffBase(kopf.AnnotationsDiffBaseStorage):
    """Kopf builds each object's essence on every watch event, a deep copy of the whole object, for
    handlers that react to changes (on.create, on.update, on.field). This operator has none: the
    scheduler tells changes apart by resourceVersion. So the essence is empty, and never stored."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Kopf's bookkeeping goes to annotations under our prefix, so status holds only our state.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = UnusedDiffBase(prefix=GROUP, key="last-handled-configuration")
    # Events come from decisions (memo.events below), not from Kopf's log lines: a retried failure
    # would otherwise post one per attempt. Failures get one ReconcileFailed Event per new cause.
    settings.posting.enabled = False
    if not hasattr(memo, "shard"):
        memo.shard = Shard()
    settings.watching.server_timeout = 300
    memo.http = httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0))
    workers = int(getattr(memo, "workers", DEFAULT_WORKERS))
    # Every reconcile worker may write at once, beside the leader election, watches' GETs and reads.
    memo.api = api_client(connections=workers + 8)
    memo.events = EventPoster(memo.api, COMPONENT, str(getattr(memo, "instance", COMPONENT)))
    memo.health = Health()
    memo.latest = _Latest()
    memo.reads = MetricsReads()
    memo.gates = GoldenSetRuns()
    memo.services = ServiceWatch()
    memo.scheduler = None
    # `llmrollout run --leader-election` puts the Lease to hold in memo; without it, this
    # process acts alone (a single replica, a test).
    election: LeaseConfig | None = getattr(memo, "election", None)
    memo.elector = None
    telemetry.LEADER.set(1)
    if election is not None:
        memo.elector = LeaderElector(memo.api, election.lease, election.identity, election.duration_seconds)
        memo.elector.attempt()
        memo.elector.start()
    if getattr(memo, "scheduler_kind", "heap") == "heap":
        memo.scheduler = Scheduler(
            lambda key: _scheduled_run(memo, key),
            workers=workers,
            active=lambda: _leading(memo),
            min_delay=REPOLL_SECONDS,
        )
        scheduler = memo.scheduler
        # A batched read's end wakes its object (a preflight's key is the object's, with a suffix).
        memo.reads.on_ready = lambda key: scheduler.wake(key.split("#", 1)[0])
        memo.scheduler.start()
    # `llmrollout run` puts the namespaces to watch in memo (None in each: every namespace) unless
    # Kopf watches LLMDeployments (use_kopf_watch).
    memo.watches = [
        ObjectWatch(
            memo.api,
            Resource(*RESOURCE),
            namespace,
            lambda kind, body: seen(memo, kind, body),
            ours=memo.latest.came_back,
        )
        for namespace in getattr(memo, "watch_namespaces", ())
    ]
    for watch in memo.watches:
        watch.start()


@kopf.on.cleanup()
def close_clients(memo: kopf.Memo, **_: Any) -> None:
    for watch in getattr(memo, "watches", ()):
        watch.stop()
    if memo.scheduler is not None:
        memo.scheduler.stop()
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


def _key(namespace: str | None, name: str | None) -> str:
    return f"{namespace}/{name}"


@dataclass(frozen=True)
class _Failed:
    message: str
    delay: float


def _attempt(memo: kopf.Memo, key: str, body: Mapping[str, Any], retry: int) -> Reconciled | _Failed | None:
    """One reconcile of `body`: what it decided, or how long to wait after a failure, or None when the
    object is gone."""
    uid: str = body["metadata"]["uid"]
    health: Health = memo.health
    latest: _Latest = memo.latest
    # Decide from a snapshot: Kopf's body (the timer scheduler's) is a live view that a watch event
    # may change mid-reconcile. The heap scheduler's bodies are copies already, never changed.
    chosen = latest.base(uid, body)
    base = copy.deepcopy(dict(chosen)) if isinstance(chosen, kopf.Body) else chosen
    interval = interval_seconds(base.get("spec") or {})
    health.attempted(key, interval)
    events: EventPoster = memo.events
    involved = involved_object(base)

    def post(event: rollout.Event) -> None:
        telemetry.DECISIONS.labels(event.reason).inc()
        level = logging.INFO if event.type == "Normal" else logging.WARNING
        logger.log(level, "%s %s: %s", key, event.reason, event.message)
        events.post(involved, event.type, event.reason, event.message)

    try:
        clients = Clients(
            memo.api,
            memo.http,
            tuple(getattr(memo, "prometheus_allowlist", ())),
            memo.reads,
            memo.gates,
            memo.services,
        )
        unwritten = latest.unwritten_for(uid, base["metadata"]["resourceVersion"])
        result = reconcile(clients, base, datetime.now(UTC), post, unwritten)
    except ObjectGoneError:
        health.forget(key)
        latest.forget(uid)
        return None
    except ReconcileError as error:
        telemetry.RECONCILES.labels("error").inc()
        telemetry.RECONCILE_ERRORS.labels(error.reason).inc()
        # Never drop the object: every failure is temporary, retried with backoff. Backoff doubles
        # per failure, up to one interval (so a recovered cluster is noticed within one) and at
        # most a minute.
        backoff = min(MAX_BACKOFF_SECONDS, max(interval, 1.0), 2.0 ** (retry + 1))
        delay = error.delay if error.delay is not None else backoff
        if delay > CONFLICT_DELAY_SECONDS and latest.failure_is_new(uid, str(error)):
            post(rollout.Event("Warning", "ReconcileFailed", f"{error}; retrying in {delay:.0f}s"))
        return _Failed(str(error), delay)
    if result.written is not None:
        latest.wrote(uid, result.superseded, result.written)
    latest.keep_unwritten(uid, result.resource_version, result.unwritten)
    latest.failure_is_new(uid, None)
    if memo.reads.waiting(key) is None:
        # A reconcile that only started or joined a metrics read decided nothing yet: the one after
        # the read ends counts for the liveness probe (a status write refused there must show).
        health.succeeded(key, interval)
    telemetry.RECONCILES.labels("success").inc()
    return result


def _scheduled_run(memo: kopf.Memo, key: str) -> float | None:
    """The scheduler's run of `key`; returns when the object next needs a reconcile (epoch seconds),
    None when idle."""
    latest: _Latest = memo.latest
    health: Health = memo.health
    body = latest.body(key)
    if body is None:
        return None
    with latest.lock:
        retry = latest.retries.get(key, 0)
    outcome = _attempt(memo, key, body, retry)
    now = datetime.now(UTC)
    if outcome is None:
        return None
    if isinstance(outcome, _Failed):
        latest.failed(key)
        return now.timestamp() + outcome.delay
    with latest.lock:
        latest.retries.pop(key, None)
    wake = rollout.next_wake(outcome.spec, outcome.status, now) if outcome.spec is not None else None
    interval = interval_seconds(body.get("spec") or {})
    if wake is None:
        health.forget(key)  # idle: nothing is due, so nothing can be late
        return None
    waiting = memo.reads.waiting(key)
    if waiting is not None and wake <= now + POLL:
        # The due window's read (or the series check before a rollout, otherwise polled) runs in a
        # batch whose end wakes this object; until then, only its deadline (the read is then
        # reported late) needs a run.
        wake = now + timedelta(seconds=waiting)
    if waiting is None:
        health.succeeded(key, interval, (wake - now).total_seconds())
    return wake.timestamp()


def tick(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """The timer scheduler's handler: every TICK_SECONDS, for every object."""
    assert namespace is not None, "LLMDeployment is a namespaced resource"
    key = _key(namespace, name)
    if not memo.shard.owns(namespace, name, body.get("metadata", {}).get("labels")):
        return  # another shard's
    if not _leading(memo):
        # A standby only watches; the leader reconciles and answers for staleness.
        memo.health.forget(key)
        return
    outcome = _attempt(memo, key, body, kwargs.get("retry", 0))
    if isinstance(outcome, _Failed):
        raise kopf.TemporaryError(outcome.message, delay=outcome.delay)


def use_timer() -> None:
    """Registers the per-object timer (`--scheduler timer`): the baseline the benchmarks compare to."""
    kopf.timer(*RESOURCE, interval=TICK_SECONDS, sharp=True)(tick)
    use_kopf_watch()


def seen(memo: kopf.Memo, event_type: str | None, body: Mapping[str, Any]) -> None:
    """Keeps the latest body of every object and wakes it when someone else changed it. Fed by our
    own watch (`watch_llmdeployments`) or, where Kopf watches LLMDeployments, by `watched`."""
    meta = body.get("metadata") or {}
    namespace, name, uid = meta.get("namespace"), meta.get("name"), meta.get("uid")
    key = _key(namespace, name)
    scheduler: Scheduler | None = getattr(memo, "scheduler", None)
    shard: Shard = memo.shard
    if event_type == "DELETED" or not shard.owns(namespace, name, meta.get("labels")):
        # Gone, or another shard's (its labels may have moved it): nothing of it is kept here.
        memo.health.forget(key)
        memo.reads.forget(key)
        memo.gates.forget(key)
        memo.latest.forget_key(key)
        memo.services.forget(key)
        if uid is not None:
            memo.latest.forget(uid)
        if scheduler is not None:
            scheduler.forget(key)
        return
    if namespace is not None:
        memo.services.refer(key, namespace, backend_names(body.get("spec")))
    if scheduler is None:
        return
    if memo.latest.saw(key, body):
        scheduler.wake(key)


async def watched(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Kopf's watch of LLMDeployments, where ours is not used (the timer scheduler, namespace globs)."""
    seen(memo, type, body)


def use_kopf_watch() -> None:
    """Has Kopf watch LLMDeployments and feed `seen`, instead of `watch_llmdeployments`."""
    kopf.on.event(*RESOURCE)(watched)


def uses_own_watch(namespaces: Sequence[str]) -> bool:
    """Whether our own watch can serve these namespaces: every one named exactly (or every namespace,
    with none named). Globs and exclusions (`team-*`, `!kube-system`) need Kopf's namespace discovery."""
    return not any(char in ns for ns in namespaces for char in "*?[]!,")


def backend_names(spec: Any) -> list[str]:
    """The Services the variants of a raw (unvalidated) spec point at; what is malformed is skipped."""
    variants = spec.get("variants") if isinstance(spec, Mapping) else None
    names = []
    for variant in variants if isinstance(variants, list) else ():
        ref = variant.get("backendRef") if isinstance(variant, Mapping) else None
        name = ref.get("name") if isinstance(ref, Mapping) else None
        if isinstance(name, str):
            names.append(name)
    return names


@kopf.on.event("v1", "services")
async def service_seen(
    type: str | None, namespace: str | None, name: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """Keeps which Services exist (so that a look need not GET each one) and wakes the objects whose
    variants point at a Service that appeared or went away."""
    if namespace is None or name is None:
        return
    woken = memo.services.saw(namespace, name, type != "DELETED")
    scheduler: Scheduler | None = getattr(memo, "scheduler", None)
    # The initial listing (type None) only fills the set: every object gets its first look anyway.
    if scheduler is None or type is None:
        return
    for key in woken:
        scheduler.wake(key)


@kopf.on.probe(id="reconciled")
def reconciled(memo: kopf.Memo, **_: Any) -> str:
    """Fails the liveness endpoint while some object has gone 3 intervals without a successful
    reconcile (a retried failure, a stuck timer)."""
    health: Health | None = getattr(memo, "health", None)
    if health is None or not _leading(memo):
        return "standby"
    scheduler: Scheduler | None = getattr(memo, "scheduler", None)
    if scheduler is not None and not scheduler.alive():
        raise kopf.PermanentError("the scheduler thread has stopped")
    if not all(watch.alive() for watch in getattr(memo, "watches", ())):
        raise kopf.PermanentError("a watch of LLMDeployments has stopped")
    stale = health.describe_stale()
    if stale:
        raise kopf.PermanentError(stale)
    return "ok"
