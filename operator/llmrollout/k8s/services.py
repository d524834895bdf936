"""Whether the Services that variants point at exist."""

from __future__ import annotations

from collections.abc import Iterable

from kubernetes import client
from kubernetes.client.exceptions import ApiException


def missing_services(api: client.ApiClient, namespace: str, names: Iterable[str]) -> list[str]:
    core = client.CoreV1Api(api)
    missing = []
    for name in sorted(set(names)):
        try:
            core.read_namespaced_service(name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            missing.append(name)
    return missing
