"""What the status model derives from itself, by tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmrollout.api import LLMDeploymentStatus, Phase, with_condition

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def status(
    routed: bool | None, weights: dict[str, int], applied: dict[str, int] | None = None
) -> LLMDeploymentStatus:
    conditions = (
        []
        if routed is None
        else with_condition([], "TrafficRouted", "True" if routed else "False", "R", "m", NOW, 1)
    )
    return LLMDeploymentStatus(
        phase=Phase.PROGRESSING, weights=weights, applied_weights=applied or {}, conditions=conditions
    )


@pytest.mark.parametrize(
    ("given", "applied"),
    [
        (status(True, {"v1": 80, "v2": 20}, {"v1": 95, "v2": 5}), {"v1": 95, "v2": 5}),
        # Written by an operator from before appliedWeights: routed means the weights are on the route.
        (status(True, {"v1": 80, "v2": 20}), {"v1": 80, "v2": 20}),
        (status(False, {"v1": 80, "v2": 20}), {}),
        (status(None, {"v1": 100}), {}),
    ],
)
def test_weights_on_route(given: LLMDeploymentStatus, applied: dict[str, int]) -> None:
    assert given.weights_on_route() == applied
