"""Whether the Services that variants point at exist."""

from __future__ import annotations

from collections.abc import Iterable

from kubernetes import client
from kubernetes.client.exceptions import ApiException

# Without a timeout a hung apiserver connection would block this object's reconcile forever.
REQUEST_TIMEOUT_SECONDS = 10.0


def missing_services(
    api: client.ApiClient,
    namespace: str,
    names: Iterable[str],
    *,
    request_timeout: float = REQUEST_TIMEOUT_SECONDS,
) -> list[str]:
    core = client.CoreV1Api(api)
    missing = []
    for name in sorted(set(names)):
        try:
            core.read_namespaced_service(name, namespace, _request_timeout=request_timeout)
        except ApiException as error:
            if error.status != 404:
                raise
            missing.append(name)
    return missing
