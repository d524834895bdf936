"""Kopf handlers for LLMDeployment: parse, read metrics when a window is due, call the pure state
machine, set the weights it chose, patch status and post Events. No decisions here."""

from __future__ import annotations

import dataclasses
import logging
import os
from datetime import UTC, datetime
from typing import Any

import httpx
import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from llmrollout import rollout
from llmrollout.api import (
    GROUP,
    PLURAL,
    VERSION,
    InvalidSpecError,
    LLMDeploymentSpec,
    LLMDeploymentStatus,
    Phase,
    parse_spec,
    with_condition,
)
from llmrollout.api.status import MAX_MESSAGE, truncate
from llmrollout.k8s import ACTION_ANNOTATION, ACTIONS, api_client, describe_api_error, missing_services
from llmrollout.metrics import MetricsError, TemplateError, check_template, provider_for
from llmrollout.routers import (
    RouteNotFoundError,
    RouterError,
    TrafficRouter,
    backends_of,
    describe_drift,
    drift,
    router_for,
)

RESOURCE = (GROUP, VERSION, PLURAL)
# How often each LLMDeployment is looked at; decisions still follow spec.strategy.interval.
TICK_SECONDS = float(os.environ.get("LLMROLLOUT_TICK_SECONDS", "1"))
TRAFFIC = "TrafficRouted"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Kopf's bookkeeping goes to annotations under our prefix, so status holds only our state.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Events come from decisions (kopf.event below), not from every handler log line.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "llmrollout"
    settings.watching.server_timeout = 300
    memo.http = httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0))
    memo.api = api_client()


@kopf.on.cleanup()
def close_clients(memo: kopf.Memo, **_: Any) -> None:
    memo.http.close()
    memo.api.close()


def _router(
    memo: kopf.Memo, spec: LLMDeploymentSpec, namespace: str, weights: dict[str, int]
) -> TrafficRouter:
    return router_for(
        spec.traffic,
        namespace=namespace,
        backends=backends_of(spec),
        custom_objects=client.CustomObjectsApi(memo.api),
        weights=weights,
    )


def _observe(
    memo: kopf.Memo, spec: LLMDeploymentSpec, status: LLMDeploymentStatus, namespace: str, now: datetime
) -> rollout.Observation | None:
    due = rollout.due_window(spec, status, now)
    if due is None:
        return None
    start, end = due
    variants = rollout.watched(spec, status)
    try:
        provider = provider_for(spec.metrics, memo.http, namespace=namespace)
        window = provider.read(variants, start.timestamp(), end.timestamp(), spec.slos.custom)
    except MetricsError as error:
        # Prometheus' own text is the server's to choose: cut it before it reaches status or Events.
        return rollout.Observation(start, end, unavailable=truncate(str(error)))
    if window.problems:
        window = dataclasses.replace(window, problems=tuple(truncate(p) for p in window.problems))
    return rollout.Observation(start, end, window=window)


def _set_weights(
    memo: kopf.Memo,
    spec: LLMDeploymentSpec,
    previous: LLMDeploymentStatus,
    wanted: dict[str, int],
    namespace: str,
) -> list[rollout.Event]:
    """Puts `wanted` on the routing object; returns a drift Event when someone else had changed it."""
    serving = [v.backend_ref.name for v in spec.variants if wanted.get(v.name)]
    missing = missing_services(memo.api, namespace, serving)
    if missing:
        raise _NotRoutedError(
            "ServiceNotFound", f"Service {', '.join(missing)} not found in namespace {namespace}"
        )
    router = _router(memo, spec, namespace, wanted)
    actual = router.read_weights()
    if actual == wanted:
        return []
    router.set_weights(wanted)
    changed = drift(previous.weights, actual)
    if previous.weights == wanted and changed:
        message = f"weights changed outside llmrollout ({describe_drift(changed)}); restored them"
        return [rollout.Event("Warning", "WeightsDrifted", message)]
    return []


class _NotRoutedError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(truncate(message, MAX_MESSAGE))
        self.reason = reason


def _route(
    memo: kopf.Memo,
    spec: LLMDeploymentSpec,
    previous: LLMDeploymentStatus,
    outcome: rollout.Outcome,
    namespace: str,
    now: datetime,
) -> rollout.Outcome:
    """Make the routing object carry the decided weights; a failure keeps the previous status."""
    generation = outcome.status.observed_generation
    try:
        try:
            drifted = _set_weights(memo, spec, previous, outcome.status.weights, namespace)
        except RouteNotFoundError as error:
            raise _NotRoutedError("RouteNotFound", str(error)) from error
        except RouterError as error:
            raise _NotRoutedError("RoutingFailed", str(error)) from error
        except ApiException as error:
            raise _NotRoutedError("APIError", describe_api_error(error)) from error
    except _NotRoutedError as failure:
        message = str(failure)
        said = (c := previous.condition(TRAFFIC)) is not None and c.message == message
        events = [] if said else [rollout.Event("Warning", "TrafficNotRouted", message)]
        # A decision that moves traffic is held back until it can be applied, so status never claims
        # weights the routing object does not carry; any other decision stands.
        hold = previous.phase not in (None, Phase.FAILED) and outcome.status.weights != previous.weights
        base = previous if hold else outcome.status
        conditions = with_condition(
            base.conditions, TRAFFIC, "False", failure.reason, message, now, generation
        )
        held = base.model_copy(update={"conditions": conditions, "observed_generation": generation})
        return rollout.Outcome(held, events if hold else [*outcome.events, *events])
    summary = ", ".join(f"{v} {w}%" for v, w in outcome.status.weights.items() if w)
    conditions = with_condition(
        outcome.status.conditions, TRAFFIC, "True", "WeightsSet", summary, now, generation
    )
    return rollout.Outcome(
        outcome.status.model_copy(update={"conditions": conditions}), [*outcome.events, *drifted]
    )


def _apply(
    outcome: rollout.Outcome, current: LLMDeploymentStatus, body: kopf.Body, patch: kopf.Patch
) -> None:
    if outcome.status != current:
        status = outcome.status.model_dump(by_alias=True, mode="json", exclude={"conditions", "history"})
        # None stays in the merge patch on purpose: it removes a key that no longer applies.
        status["conditions"] = [
            c.model_dump(by_alias=True, mode="json", exclude_none=True) for c in outcome.status.conditions
        ]
        status["history"] = [h.model_dump(by_alias=True, mode="json") for h in outcome.status.history]
        patch.status.update(status)
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=truncate(event.message, MAX_MESSAGE))


@kopf.timer(*RESOURCE, interval=TICK_SECONDS, sharp=True)
def tick(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    namespace: str | None,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    assert namespace is not None, "LLMDeployment is a namespaced resource"
    current = LLMDeploymentStatus.model_validate(dict(status))
    generation = meta.get("generation")
    now = datetime.now(UTC)
    try:
        parsed = parse_spec(spec)
        for index, slo in enumerate(parsed.slos.custom):
            try:
                check_template(slo.query)
            except TemplateError as error:
                raise InvalidSpecError(f"spec.slos.custom[{index}].query: {error}") from error
    except InvalidSpecError as error:
        _apply(rollout.reject("InvalidSpec", str(error), current, generation, now), current, body, patch)
        return
    requested = meta.get("annotations", {}).get(ACTION_ANNOTATION)
    action: rollout.Action | None = None
    if requested is not None:
        patch.metadata.setdefault("annotations", {})[ACTION_ANNOTATION] = None
        if requested in ACTIONS:
            action = requested
        else:
            message = f"annotation {ACTION_ANNOTATION}={requested!r} ignored; use {' or '.join(ACTIONS)}"
            kopf.event(body, type="Warning", reason="UnknownAction", message=message)
    observation = _observe(memo, parsed, current, namespace, now)
    outcome = rollout.reconcile(parsed, current, generation, now, observation, action)
    routed = (c := current.condition(TRAFFIC)) is not None and c.status == "True"
    # The routing object is read when weights change, after a failure, and once per analysis
    # (to catch drift), not on every tick.
    if outcome.status.weights != current.weights or not routed or observation is not None:
        outcome = _route(memo, parsed, current, outcome, namespace, now)
    _apply(outcome, current, body, patch)
