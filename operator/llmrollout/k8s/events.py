"""Events about LLMDeployments, posted by the reconcile that made the decision.

Posted in the caller's thread, after the status write that records the decision, over the lean
client where it applies (k8s.lean): about a third of the CPU of Kopf's queue and aiohttp client,
which at a thousand rolling objects (30 Events a second) was a tenth of the operator's CPU. An Event
is auxiliary: a refused or failed post is logged and never fails the reconcile.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from llmrollout.k8s.lean import lean_client_for

# An Event is worth a short wait at most: the reconcile that posts it holds a worker meanwhile.
REQUEST_TIMEOUT_SECONDS: Final = 5.0
# The apiserver refuses an Event message over 1024 bytes (not characters): a message cut by
# characters, with a multi-byte character in it ("…" from truncate), would be lost whole.
EVENT_MESSAGE_BYTES: Final = 1000
NAME_PREFIX: Final = "llmrollout-"
logger = logging.getLogger(__name__)


def event_message(message: str) -> str:
    """`message` in at most EVENT_MESSAGE_BYTES of UTF-8, its start and its end kept."""
    encoded = message.encode()
    if len(encoded) <= EVENT_MESSAGE_BYTES:
        return message
    head = encoded[: EVENT_MESSAGE_BYTES * 2 // 3].decode(errors="ignore")
    tail = encoded[-(EVENT_MESSAGE_BYTES // 3 - 8) :].decode(errors="ignore")
    return f"{head} [...] {tail}"


def involved_object(obj: Mapping[str, Any]) -> dict[str, str]:
    """The reference an Event about `obj` carries (what `kubectl describe` matches Events by)."""
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": str(obj.get("apiVersion", "")),
        "kind": str(obj.get("kind", "")),
        "namespace": str(meta.get("namespace", "")),
        "name": str(meta.get("name", "")),
        "uid": str(meta.get("uid", "")),
    }


def event_body(
    involved: Mapping[str, str], event_type: str, reason: str, message: str, component: str, instance: str
) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"namespace": involved["namespace"], "generateName": NAME_PREFIX},
        "involvedObject": dict(involved),
        "type": event_type,
        "reason": reason,
        "action": reason,
        "message": event_message(message),
        "reportingComponent": component,
        "reportingInstance": instance,
        "source": {"component": component},  # the "From" column of `kubectl describe`
        "firstTimestamp": now,
        "lastTimestamp": now,
        "eventTime": now,
        "count": 1,
    }


class EventPoster:
    """Posts Events as `component` (the "From" of `kubectl describe`) and `instance` (which process
    of several decided: a replica, a shard)."""

    def __init__(self, api: client.ApiClient, component: str, instance: str) -> None:
        self._api = api
        self._component = component
        self._instance = instance

    def post(self, involved: Mapping[str, str], event_type: str, reason: str, message: str) -> bool:
        """True when the apiserver stored the Event; a failure is logged, never raised."""
        body = event_body(involved, event_type, reason, message, self._component, self._instance)
        namespace = involved["namespace"]
        try:
            lean = lean_client_for(self._api)
            if lean is None:
                client.CoreV1Api(self._api).create_namespaced_event(
                    namespace, body, _request_timeout=REQUEST_TIMEOUT_SECONDS
                )
                return True
            path = f"/api/v1/namespaces/{quote(namespace, safe='')}/events"
            status, why, data = lean.send("POST", path, json.dumps(body).encode(), REQUEST_TIMEOUT_SECONDS)
            if status >= 300:
                raise ApiException(status=status, reason=why, body=data.decode(errors="replace")[:500])
            return True
        except (ApiException, OSError) as error:
            logger.warning(
                "could not post the %s Event about %s/%s: %s", reason, namespace, involved["name"], error
            )
            return False
