"""Analysis only: no traffic object is touched, so weights are whatever the caller says they are."""

from __future__ import annotations

from collections.abc import Mapping


class NoneRouter:
    """Remembers nothing: `read_weights` returns the weights given at construction (or {})."""

    def __init__(self, weights: Mapping[str, int] | None = None) -> None:
        self._weights = dict(weights or {})

    def read_weights(self) -> dict[str, int]:
        return dict(self._weights)

    def set_weights(self, weights: Mapping[str, int]) -> None:
        # Traffic is split by something outside the operator; there is nothing to change.
        return None
