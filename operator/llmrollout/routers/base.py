"""The seam between the operator and whatever splits traffic: one Protocol, its errors, drift."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class RouterError(Exception):
    """Weights could not be read or set; the message says which object and why."""


class RouteNotFoundError(RouterError):
    def __init__(self, namespace: str, name: str, detail: str = "") -> None:
        self.namespace = namespace
        self.name = name
        super().__init__(f"HTTPRoute {namespace}/{name} not found" + (f": {detail}" if detail else ""))


class RouteNotOptedInError(RouterError):
    """The route is someone else's: it neither opts in nor references the variants' backends."""


class RouteConflictError(RouterError):
    """Someone else kept changing the route while we tried to set its weights."""


class UnknownRouterError(RouterError, ValueError):
    """The spec names a router this operator does not know."""


class TrafficRouter(Protocol):
    def read_weights(self) -> dict[str, int]:
        """Variant -> percent, as currently set on the routing object."""
        ...

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Sends `weights` (variant -> percent, summing to 100); variants left out get 0."""
        ...


def drift(expected: Mapping[str, int], actual: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """Variant -> (expected, actual) for every variant whose weight differs; a missing one counts as 0.

    Empty when nothing drifted, so `if drift(...)` reads naturally.
    """
    return {
        variant: (expected.get(variant, 0), actual.get(variant, 0))
        for variant in sorted(set(expected) | set(actual))
        if expected.get(variant, 0) != actual.get(variant, 0)
    }


def describe_drift(changes: Mapping[str, tuple[int, int]]) -> str:
    """One line for an Event, e.g. "v1 75% -> 60%, v2 25% -> 40%"."""
    return ", ".join(f"{v} {want}% -> {have}%" for v, (want, have) in sorted(changes.items()))
