"""Drift, the none router and the factory."""

from __future__ import annotations

from typing import Any

import pytest

from llmrollout.api.spec import LLMDeploymentSpec, Traffic
from llmrollout.routers import (
    GatewayAPIRouter,
    NoneRouter,
    RouterError,
    UnknownRouterError,
    backends_of,
    describe_drift,
    drift,
    router_for,
)


@pytest.mark.parametrize(
    ("expected", "actual", "changes"),
    [
        ({"v1": 75, "v2": 25}, {"v1": 75, "v2": 25}, {}),
        ({"v1": 75, "v2": 25}, {"v1": 60, "v2": 40}, {"v1": (75, 60), "v2": (25, 40)}),
        ({"v1": 100, "v2": 0}, {"v1": 100}, {}),
        ({"v1": 100}, {"v1": 100, "v2": 0, "hosted": 0}, {}),
        ({"v1": 100}, {"v1": 90, "hosted": 10}, {"v1": (100, 90), "hosted": (0, 10)}),
        ({}, {}, {}),
        ({"v1": 50, "v2": 50}, {}, {"v1": (50, 0), "v2": (50, 0)}),
    ],
)
def test_drift(expected: dict[str, int], actual: dict[str, int], changes: dict[str, tuple[int, int]]) -> None:
    assert drift(expected, actual) == changes


def test_describe_drift() -> None:
    assert describe_drift({"v2": (25, 40), "v1": (75, 60)}) == "v1 75% -> 60%, v2 25% -> 40%"
    assert describe_drift({}) == ""


def test_none_router_remembers_nothing() -> None:
    assert NoneRouter().read_weights() == {}
    router = NoneRouter({"v1": 75, "v2": 25})
    router.set_weights({"v1": 0, "v2": 100})
    assert router.read_weights() == {"v1": 75, "v2": 25}


SPEC: dict[str, Any] = {
    "variants": [
        {"name": "v1", "model": "m1", "backendRef": {"name": "bot-v1", "port": 8000}},
        {"name": "v2", "model": "m2", "backendRef": {"name": "bot-v2", "port": 8001}},
    ],
    "stable": "v1",
    "traffic": {"router": "gatewayAPI", "httpRouteRef": {"name": "bot"}},
    "metrics": {"prometheus": {"address": "http://p:9090"}},
}


def test_backends_of() -> None:
    spec = LLMDeploymentSpec.model_validate(SPEC)
    assert backends_of(spec) == {"v1": ("bot-v1", 8000), "v2": ("bot-v2", 8001)}


def test_router_for_gateway_api() -> None:
    spec = LLMDeploymentSpec.model_validate(SPEC)
    api = object()
    router = router_for(spec.traffic, namespace="team-a", backends=backends_of(spec), custom_objects=api)
    assert isinstance(router, GatewayAPIRouter)
    assert (router.namespace, router.route_name) == ("team-a", "bot")
    assert router.backends == {"v1": ("bot-v1", 8000), "v2": ("bot-v2", 8001)}


def test_router_for_gateway_api_needs_a_route_and_an_api() -> None:
    with pytest.raises(RouterError, match="httpRouteRef"):
        router_for(
            Traffic.model_construct(router="gatewayAPI", http_route_ref=None), namespace="n", backends={}
        )
    with pytest.raises(ValueError, match="CustomObjectsApi"):
        router_for(Traffic.model_validate({"httpRouteRef": {"name": "r"}}), namespace="n", backends={})


def test_router_for_none() -> None:
    router = router_for(Traffic(router="none"), namespace="n", backends={}, weights={"v1": 100})
    assert isinstance(router, NoneRouter)
    assert router.read_weights() == {"v1": 100}


def test_unknown_routers_raise() -> None:
    istio: Any = "istio"  # not in the spec's Literal yet: a spec from a newer CRD
    with pytest.raises(UnknownRouterError, match="'istio'"):
        router_for(Traffic.model_construct(router=istio, http_route_ref=None), namespace="n", backends={})
