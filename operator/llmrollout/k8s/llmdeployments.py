"""Reading LLMDeployments and asking the operator to act on them, as a user would through the API."""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from llmrollout.api import GROUP, KIND, PLURAL, VERSION
from llmrollout.k8s.lean import lean_client_for

ACTION_ANNOTATION: Final = f"{GROUP}/action"
ACTIONS: Final = ("promote", "abort", "failback")


class LLMDeploymentNotFoundError(LookupError):
    def __init__(self, namespace: str, name: str) -> None:
        super().__init__(f"LLMDeployment {namespace}/{name} not found")


def _objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def _patch(api: client.ApiClient, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        result: dict[str, Any] = _objects(api).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, body
        )
    except ApiException as error:
        if error.status == 404:
            raise LLMDeploymentNotFoundError(namespace, name) from error
        raise
    return result


def get_llmdeployment(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = _objects(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
    except ApiException as error:
        if error.status == 404:
            raise LLMDeploymentNotFoundError(namespace, name) from error
        raise
    return result


def list_llmdeployments(api: client.ApiClient, namespace: str | None) -> list[dict[str, Any]]:
    objects = _objects(api)
    if namespace is None:
        listing = objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    else:
        listing = objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    items: list[dict[str, Any]] = listing["items"]
    return items


def request_action(api: client.ApiClient, namespace: str, name: str, action: str) -> dict[str, Any]:
    """Promote, abort and failback happen once, so they are requests (an annotation the operator
    clears), not spec."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    return _patch(api, namespace, name, {"metadata": {"annotations": {ACTION_ANNOTATION: action}}})


def set_paused(api: client.ApiClient, namespace: str, name: str, paused: bool) -> dict[str, Any]:
    """Pausing is a lasting wish, so it lives in spec.paused where users (and Git) can see it."""
    return _patch(api, namespace, name, {"spec": {"paused": paused}})


# Without a timeout a hung apiserver connection would hold this object's reconcile forever.
REQUEST_TIMEOUT_SECONDS = 10.0


class StaleObjectError(Exception):
    """The object changed since it was read (HTTP 409): re-read it and decide again."""


def write_status(
    api: client.ApiClient,
    namespace: str,
    name: str,
    resource_version: str,
    status: dict[str, Any],
) -> dict[str, Any]:
    """Replaces the object's status with `status`, only if the object is still at `resource_version`.

    The fence makes every write a decision taken from the status it replaces: an operator that
    read an older object (a stale cache, a second replica) gets StaleObjectError, never a
    last-writer-wins status. A replace, not a merge, so keys that no longer apply are gone; the
    apiserver keeps everything but status from the stored object.
    """
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
        "status": status,
    }
    try:
        result: dict[str, Any] = _replace_status(api, namespace, name, body)
    except ApiException as error:
        if error.status == 409:
            raise StaleObjectError(f"LLMDeployment {namespace}/{name} changed since it was read") from error
        if error.status == 404:
            raise LLMDeploymentNotFoundError(namespace, name) from error
        raise
    return result


def _replace_status(api: client.ApiClient, namespace: str, name: str, body: dict[str, Any]) -> Any:
    """The status PUT: lean where the client's configuration allows (the hot path at scale), else
    through the kubernetes client. Refusals are ApiException either way."""
    lean = lean_client_for(api)
    if lean is None:
        return _objects(api).replace_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, body, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
    where = f"namespaces/{quote(namespace, safe='')}/{PLURAL}/{quote(name, safe='')}"
    path = f"/apis/{GROUP}/{VERSION}/{where}/status"
    status, reason, data = lean.send("PUT", path, json.dumps(body).encode(), REQUEST_TIMEOUT_SECONDS)
    if status >= 300:
        raise ApiException(status=status, reason=reason, body=data.decode(errors="replace"))
    return json.loads(data)


def clear_action(api: client.ApiClient, namespace: str, name: str, action: str) -> bool:
    """Removes the action annotation if it still asks for `action`; False if it changed meanwhile
    (a newer request stays for the next reconcile) or is already gone."""
    path = "/metadata/annotations/" + ACTION_ANNOTATION.replace("~", "~0").replace("/", "~1")
    body = [{"op": "test", "path": path, "value": action}, {"op": "remove", "path": path}]
    try:
        _objects(api).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body,
            _content_type="application/json-patch+json",
            _request_timeout=REQUEST_TIMEOUT_SECONDS,
        )
    except ApiException as error:
        if error.status in (404, 422):  # gone, or the test op failed: someone else's request now
            return False
        raise
    return True
