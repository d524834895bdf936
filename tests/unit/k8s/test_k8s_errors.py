"""API errors become one bounded line; text from outside never reaches status unbounded."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from llmrollout.api.status import MAX_EXTERNAL_TEXT, truncate
from llmrollout.k8s import describe_api_error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("short", "short"),
        ("two\nlines\t and  spaces", "two lines and spaces"),
        ("x" * MAX_EXTERNAL_TEXT, "x" * MAX_EXTERNAL_TEXT),
        ("x" * (MAX_EXTERNAL_TEXT + 1), "x" * (MAX_EXTERNAL_TEXT - 1) + "…"),
        ("", ""),
    ],
)
def test_truncate(text: str, expected: str) -> None:
    assert truncate(text) == expected


def error(status: int, reason: str, body: object) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            error(403, "Forbidden", {"kind": "Status", "message": 'llmdeployments "bot" is forbidden'}),
            'Kubernetes API: 403 Forbidden: llmdeployments "bot" is forbidden',
        ),
        (
            error(500, "Internal Server Error", "<html>not json</html>"),
            "Kubernetes API: 500 Internal Server Error",
        ),
        (error(429, "Too Many Requests", None), "Kubernetes API: 429 Too Many Requests"),
        (
            error(422, "Unprocessable Entity", ["not", "a", "status"]),
            "Kubernetes API: 422 Unprocessable Entity",
        ),
    ],
)
def test_describe_api_error(exc: ApiException, expected: str) -> None:
    assert describe_api_error(exc) == expected


def test_a_huge_error_body_is_cut() -> None:
    said = describe_api_error(error(422, "Unprocessable Entity", {"message": "y" * 200_000 + " the cause"}))
    assert len(said) == MAX_EXTERNAL_TEXT
    assert said.startswith("Kubernetes API: 422") and said.endswith("y the cause") and "…" in said
