"""Normalisation shared by the string scorers."""

from __future__ import annotations

import re

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    # Models differ in trailing newlines, spacing and case; none of that changes the answer.
    return _SPACE.sub(" ", text).strip().casefold()


def reference_text(reference: object) -> str | None:
    return reference if isinstance(reference, str) else None


def no_reference(scorer: str) -> str:
    return f"{scorer} needs a string reference on the item"
