"""Parsing raw objects into models, with errors that name the field the way kubectl does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from llmrollout.api.spec import LLMDeploymentSpec


class InvalidSpecError(ValueError):
    """The spec passed the CRD schema (or bypassed it) but cannot be acted on."""


def field_path(root: str, location: tuple[int | str, ...]) -> str:
    path = root
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def describe(error: ValidationError, root: str = "spec") -> str:
    return "; ".join(
        f"{field_path(root, tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
        for e in error.errors()
    )


def parse_spec(raw: Mapping[str, Any]) -> LLMDeploymentSpec:
    try:
        return LLMDeploymentSpec.model_validate(dict(raw))
    except ValidationError as error:
        raise InvalidSpecError(describe(error)) from error
