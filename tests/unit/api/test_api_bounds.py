"""Bounds on what is written: the interval floor (spec) and the size of status (schema and models)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from llmrollout.api import MAX_HISTORY, HistoryEntry, crd, with_condition
from llmrollout.api.spec import MIN_INTERVAL
from llmrollout.api.status import MAX_CONDITIONS, MAX_MESSAGE, MAX_REASON


def validations(schema: dict[str, Any], path: str) -> list[dict[str, str]]:
    node = schema
    for key in path.split("."):
        node = node["properties"][key]
    rules: list[dict[str, str]] = node.get("x-kubernetes-validations", [])
    return rules


@pytest.mark.parametrize("path", ["strategy.interval", "analysis.lookInterval"])
def test_committed_crd_refuses_intervals_below_ten_seconds(path: str) -> None:
    assert MIN_INTERVAL == "10s"
    rules = validations(crd.spec_schema(), path)
    assert {"rule": "duration(self) >= duration('10s')", "message": "must be at least 10s"} in rules


@pytest.mark.parametrize("path", ["strategy.interval", "analysis.lookInterval"])
def test_a_test_cluster_floor_replaces_the_rule(path: str) -> None:
    rules = validations(crd.spec_schema("1s"), path)
    assert rules == [{"rule": "duration(self) >= duration('1s')", "message": "must be at least 1s"}]


def test_the_floor_moves_nothing_else() -> None:
    lowered = yaml.safe_dump(crd.crd_manifest("1s")).replace("'1s'", "'10s'").replace("least 1s", "least 10s")
    assert yaml.safe_load(lowered) == crd.crd_manifest()


def test_a_floor_that_is_not_a_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        crd.spec_schema("ten seconds")


def status_property(*path: str) -> dict[str, Any]:
    node: dict[str, Any] = crd.status_schema()
    for key in path:
        node = node["items"] if key == "[]" else node["properties"][key]
    return node


@pytest.mark.parametrize(
    ("path", "bound", "value"),
    [
        (("conditions",), "maxItems", MAX_CONDITIONS),
        (("conditions", "[]", "message"), "maxLength", MAX_MESSAGE),
        (("conditions", "[]", "reason"), "maxLength", MAX_REASON),
        (("history",), "maxItems", MAX_HISTORY),
        (("history", "[]", "message"), "maxLength", MAX_MESSAGE),
        (("weights",), "maxProperties", 16),
        (("stepRequests",), "maxProperties", 16),
        (("fallback", "reason"), "maxLength", MAX_MESSAGE),
        (("fallback", "tried"), "maxItems", 16),
        (("stable",), "maxLength", 63),
    ],
)
def test_status_schema_is_bounded(path: tuple[str, ...], bound: str, value: int) -> None:
    assert status_property(*path)[bound] == value


def test_long_messages_are_cut_not_refused() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    conditions = with_condition([], "Ready", "False", "R" * 500, "m" * 100_000, now, 1)
    entry = HistoryEntry(time=now, reason="R" * 500, message="x\n" * 50_000)
    assert len(conditions[0].message) == MAX_MESSAGE and conditions[0].message.endswith("…")
    assert len(conditions[0].reason) == MAX_REASON
    assert len(entry.message) == MAX_MESSAGE and "\n" not in entry.message
