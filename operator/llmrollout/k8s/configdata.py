"""Values the golden-set gate reads: a ConfigMap key (the set) and a Secret key (an API key)."""

from __future__ import annotations

import base64

from kubernetes import client
from kubernetes.client.exceptions import ApiException

REQUEST_TIMEOUT_SECONDS = 10.0


class ConfigDataError(Exception):
    """The object or its key is not there; the message names both."""


def config_map_value(api: client.ApiClient, namespace: str, name: str, key: str) -> str:
    try:
        found = client.CoreV1Api(api).read_namespaced_config_map(
            name, namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
    except ApiException as error:
        if error.status == 404:
            raise ConfigDataError(f"ConfigMap {name} not found in namespace {namespace}") from error
        raise
    value = (found.data or {}).get(key)
    if value is None:
        raise ConfigDataError(f"ConfigMap {namespace}/{name} has no key {key!r}")
    return str(value)


def secret_value(api: client.ApiClient, namespace: str, name: str, key: str) -> str:
    try:
        core = client.CoreV1Api(api)
        found = core.read_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    except ApiException as error:
        if error.status == 404:
            raise ConfigDataError(f"Secret {name} not found in namespace {namespace}") from error
        raise
    encoded = (found.data or {}).get(key)
    if encoded is None:
        raise ConfigDataError(f"Secret {namespace}/{name} has no key {key!r}")
    return base64.b64decode(encoded).decode()
