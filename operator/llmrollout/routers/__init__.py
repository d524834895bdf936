"""Traffic routers: set and read the variants' weights (see base.TrafficRouter)."""

from llmrollout.routers.base import (
    RouteConflictError,
    RouteNotFoundError,
    RouteNotOptedInError,
    RouterError,
    TrafficRouter,
    UnknownRouterError,
    describe_drift,
    drift,
)
from llmrollout.routers.factory import backends_of, router_for
from llmrollout.routers.gateway_api import (
    OWNER_ANNOTATION,
    GatewayAPIRouter,
    check_owned,
    render_backend_refs,
    weights_from_route,
)
from llmrollout.routers.none import NoneRouter

__all__ = [
    "OWNER_ANNOTATION",
    "GatewayAPIRouter",
    "NoneRouter",
    "RouteConflictError",
    "RouteNotFoundError",
    "RouteNotOptedInError",
    "RouterError",
    "TrafficRouter",
    "UnknownRouterError",
    "backends_of",
    "check_owned",
    "describe_drift",
    "drift",
    "render_backend_refs",
    "router_for",
    "weights_from_route",
]
