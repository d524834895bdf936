"""Kubernetes API errors as short, bounded messages fit for status, Events and the terminal."""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client.exceptions import ApiException

from llmrollout.api.status import truncate_middle


def status_body(error: ApiException) -> dict[str, Any]:
    """The apiserver's Status object from an error, or {} when the body is not one."""
    try:
        body = json.loads(error.body) if error.body else {}
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def describe_api_error(error: ApiException) -> str:
    """E.g. "Kubernetes API: 403 Forbidden: llmdeployments ... is forbidden: ..." (bounded)."""
    message = status_body(error).get("message") or ""
    head = f"Kubernetes API: {error.status} {error.reason or ''}".rstrip()
    return truncate_middle(f"{head}: {message}" if message else head)
