"""Reading LLMDeployments and asking the operator to act on them, as a user would through the API."""

from __future__ import annotations

from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from llmrollout.api import GROUP, PLURAL, VERSION

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
