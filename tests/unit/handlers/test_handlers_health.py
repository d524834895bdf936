"""The liveness verdict: stale after 3 of an object's own intervals without a successful reconcile."""

from __future__ import annotations

import pytest

from llmrollout.handlers.health import Health


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("steps", "stale"),
    [
        # (action, key, interval, seconds to advance afterwards)
        ([("attempted", "a", 10.0, 30.0)], {}),  # exactly 3 intervals: not yet
        ([("attempted", "a", 10.0, 31.0)], {"a": 31.0}),  # never succeeded since first attempt
        ([("succeeded", "a", 10.0, 29.0), ("attempted", "a", 10.0, 2.0)], {"a": 31.0}),
        ([("succeeded", "a", 10.0, 29.0), ("succeeded", "a", 10.0, 29.0)], {}),  # each success resets
        ([("succeeded", "a", 60.0, 100.0), ("succeeded", "b", 10.0, 31.0)], {"b": 31.0}),
        ([("attempted", "a", 10.0, 31.0), ("forget", "a", 0.0, 0.0)], {}),  # deleted objects drop out
        # A repeated attempt does not restart the clock.
        ([("attempted", "a", 10.0, 20.0), ("attempted", "a", 10.0, 11.0)], {"a": 31.0}),
    ],
)
def test_stale(steps: list[tuple[str, str, float, float]], stale: dict[str, float]) -> None:
    clock = Clock()
    health = Health(clock)
    for action, key, interval, advance in steps:
        if action == "forget":
            health.forget(key)
        else:
            getattr(health, action)(key, interval)
        clock.now += advance
    assert health.stale() == stale


def test_describe_names_at_most_five() -> None:
    clock = Clock()
    health = Health(clock)
    assert health.describe_stale() == ""
    for index in range(7):
        health.attempted(f"ns/o{index}", 1.0)
    clock.now += 4
    said = health.describe_stale()
    assert said.startswith("no successful reconcile within 3 intervals: ns/o0 (4s)")
    assert said.endswith("ns/o4 (4s) and 2 more")
