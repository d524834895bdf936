"""What the operator refuses after the schema: errors name the field as kubectl would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmrollout.api import InvalidSpecError, parse_spec

REPO = Path(__file__).resolve().parents[3]


def basic_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((REPO / "examples/basic.yaml").read_text())["spec"]
    return spec


def test_example_parses() -> None:
    spec = parse_spec(basic_spec())
    assert spec.stable == "v1"
    assert spec.strategy.interval.total_seconds() == 60
    assert spec.slos.ttft is not None and spec.slos.ttft.p95.total_seconds() == 0.8
    assert spec.variant("hosted").backend_ref.port == 443


@pytest.mark.parametrize(
    ("custom_query", "expected"),
    [
        ('rate(x{v="{{variant}}"}[{{window}}])', "spec.slos.custom[0].query: unknown placeholder {{window}}"),
        ("rate(x[{{interval}}])", "spec.slos.custom[0].query: must contain {{variant}}"),
    ],
)
def test_custom_query_placeholders(custom_query: str, expected: str) -> None:
    raw = basic_spec()
    raw["slos"]["custom"] = [{"name": "refusals", "query": custom_query, "max": 0.1}]
    with pytest.raises(InvalidSpecError) as error:
        parse_spec(raw)
    assert expected in str(error.value)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("strategy", "interval"), "soon", "spec.strategy.interval: 'soon' is not a duration"),
        (("slos", "errorRate", "max"), 2, "spec.slos.errorRate.max: Input should be less than or equal to 1"),
        (("traffic", "router"), "nginx", "spec.traffic.router: Input should be 'gatewayAPI' or 'none'"),
        (("paused",), "maybe", "spec.paused: Input should be a valid boolean"),
    ],
)
def test_model_errors_name_the_field(path: tuple[str, ...], value: Any, expected: str) -> None:
    raw = basic_spec()
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(InvalidSpecError) as error:
        parse_spec(raw)
    assert expected in str(error.value)


def test_unknown_field_is_an_error_not_ignored() -> None:
    raw = basic_spec()
    raw["strategy"]["stepWeight"] = 10
    with pytest.raises(InvalidSpecError, match=r"spec\.strategy\.stepWeight"):
        parse_spec(raw)
