"""Bounds the CRD puts on what is written: the interval floor (spec) and the size of status."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from llmrollout.api import crd
from llmrollout.api.spec import MIN_INTERVAL


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
