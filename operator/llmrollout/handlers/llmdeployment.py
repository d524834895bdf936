"""Kopf handlers for LLMDeployment: parse, call the pure state machine, patch status, post Events."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from llmrollout import rollout
from llmrollout.api import GROUP, PLURAL, VERSION, InvalidSpecError, LLMDeploymentStatus, parse_spec

RESOURCE = (GROUP, VERSION, PLURAL)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Kopf's bookkeeping goes to annotations under our prefix, so status holds only our state.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Events come from decisions (kopf.event below), not from every handler log line.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "llmrollout"
    settings.watching.server_timeout = 300


def apply_outcome(outcome: rollout.Outcome, body: kopf.Body, patch: kopf.Patch) -> None:
    status = outcome.status.model_dump(by_alias=True, mode="json", exclude={"conditions"})
    # None stays in the merge patch on purpose: it removes a key that no longer applies.
    status["conditions"] = [
        c.model_dump(by_alias=True, mode="json", exclude_none=True) for c in outcome.status.conditions
    ]
    patch.status.update(status)
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def reconcile(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, patch: kopf.Patch, **_: Any
) -> None:
    current = LLMDeploymentStatus.model_validate(dict(status))
    generation = meta.get("generation")
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        outcome = rollout.initialize(parse_spec(spec), current, generation, now)
    except InvalidSpecError as error:
        outcome = rollout.reject("InvalidSpec", str(error), current, generation, now)
    apply_outcome(outcome, body, patch)
