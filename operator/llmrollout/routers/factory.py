"""The one place that knows every traffic router: spec in, router out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmrollout.api.spec import LLMDeploymentSpec, Traffic
from llmrollout.routers.base import RouterError, TrafficRouter, UnknownRouterError
from llmrollout.routers.gateway_api import Backend, GatewayAPIRouter
from llmrollout.routers.none import NoneRouter


def backends_of(spec: LLMDeploymentSpec) -> dict[str, Backend]:
    """Variant -> (Service name, port), in spec order."""
    return {v.name: (v.backend_ref.name, v.backend_ref.port) for v in spec.variants}


def router_for(
    traffic: Traffic,
    *,
    namespace: str,
    backends: Mapping[str, Backend],
    custom_objects: Any = None,  # kubernetes.client.CustomObjectsApi; needed by gatewayAPI
    weights: Mapping[str, int] | None = None,  # what the none router reports (e.g. status.weights)
    owner: str | None = None,  # the LLMDeployment's name: a route opts in by naming it
) -> TrafficRouter:
    if traffic.router == "gatewayAPI":
        if traffic.http_route_ref is None:
            raise RouterError("spec.traffic.httpRouteRef is required when router is gatewayAPI")
        if custom_objects is None:
            raise ValueError("the gatewayAPI router needs a kubernetes.client.CustomObjectsApi")
        return GatewayAPIRouter(custom_objects, namespace, traffic.http_route_ref.name, backends, owner=owner)
    if traffic.router == "none":
        return NoneRouter(weights)
    raise UnknownRouterError(f"unknown traffic router {traffic.router!r}; known: gatewayAPI, none")
