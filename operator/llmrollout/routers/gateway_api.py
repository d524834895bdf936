"""Gateway API HTTPRoute weights (gateway.networking.k8s.io/v1).

The route is the user's: only the weights of backendRefs that point at the variants' Services, in
the rule(s) that reference a variant (else the first rule), are ours. Every other field, rule and
backendRef is written back exactly as read. A route is changed only when it is ours to change: it
carries the OWNER_ANNOTATION naming the LLMDeployment, or (without that annotation) already
references a variant's Service. Any other route in the namespace (someone's `payments`) is left
untouched, whatever a spec names.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from llmrollout.routers.base import (
    RouteConflictError,
    RouteNotFoundError,
    RouteNotOptedInError,
    RouterError,
)

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
PLURAL = "httproutes"
FIELD_MANAGER = "llmrollout"
MAX_WEIGHT = 1_000_000  # HTTPRoute's own bound on a backendRef weight
DEFAULT_WEIGHT = 1  # what Gateway API assumes when a backendRef has no weight
OWNER_ANNOTATION = "llmrollout.io/llmdeployment"

Backend = tuple[str, int]  # Service name and port, in the route's namespace


# --- pure -----------------------------------------------------------------------------------------


def check_backends(backends: Mapping[str, Backend]) -> None:
    seen: dict[Backend, str] = {}
    for variant, (name, port) in backends.items():
        if not name or not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ValueError(f"variant {variant}: backend needs a Service name and a port in 1..65535")
        if (name, port) in seen:
            raise ValueError(f"variants {seen[(name, port)]} and {variant} share backend {name}:{port}")
        seen[(name, port)] = variant


def check_weights(weights: Mapping[str, int], backends: Mapping[str, Backend]) -> None:
    """Percent per known variant, summing to 100 (a split that sends traffic nowhere is a bug)."""
    unknown = sorted(set(weights) - set(backends))
    if unknown:
        raise ValueError(f"weights for unknown variant(s) {', '.join(unknown)}; known: {', '.join(backends)}")
    for variant, weight in weights.items():
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            raise ValueError(f"weight of {variant} must be an integer percent in 0..100, not {weight!r}")
    if sum(weights.values()) != 100:
        raise ValueError(f"weights must sum to 100, not {sum(weights.values())}: {dict(weights)}")


def _variant_of(ref: Mapping[str, Any], backends: Mapping[str, Backend], namespace: str | None) -> str | None:
    """The variant whose Service `ref` points at, or None for a backendRef that is not ours."""
    if ref.get("group") not in (None, "") or ref.get("kind", "Service") != "Service":
        return None
    ref_namespace = ref.get("namespace")
    if ref_namespace is not None and ref_namespace != namespace:
        return None
    for variant, (name, port) in backends.items():
        if ref.get("name") == name and ref.get("port") == port:
            return variant
    return None


def _rules_with_variants(
    rules: list[dict[str, Any]], backends: Mapping[str, Backend], namespace: str | None
) -> list[int]:
    return [
        i
        for i, rule in enumerate(rules)
        if any(_variant_of(ref, backends, namespace) is not None for ref in rule.get("backendRefs") or ())
    ]


def _owned_rules(
    rules: list[dict[str, Any]], backends: Mapping[str, Backend], namespace: str | None
) -> list[int]:
    """Indexes of the rules whose variant weights are ours: those that reference a variant, else the first."""
    return _rules_with_variants(rules, backends, namespace) or ([0] if rules else [])


def _namespace(route: Mapping[str, Any]) -> str | None:
    namespace = (route.get("metadata") or {}).get("namespace")
    return namespace if isinstance(namespace, str) else None


def check_owned(route: Mapping[str, Any], backends: Mapping[str, Backend], owner: str | None) -> None:
    """Raises RouteNotOptedInError unless the route opts in for `owner` or references a variant."""
    meta = route.get("metadata") or {}
    where = f"HTTPRoute {meta.get('namespace')}/{meta.get('name')}"
    named = (meta.get("annotations") or {}).get(OWNER_ANNOTATION)
    if named is not None:
        if owner is not None and named == owner:
            return
        raise RouteNotOptedInError(
            f"{where} belongs to LLMDeployment {named!r} ({OWNER_ANNOTATION}); left untouched"
        )
    rules: list[dict[str, Any]] = (route.get("spec") or {}).get("rules") or []
    if _rules_with_variants(rules, backends, _namespace(route)):
        return
    hint = f"annotate it {OWNER_ANNOTATION}={owner}" if owner else f"annotate it {OWNER_ANNOTATION}"
    raise RouteNotOptedInError(
        f"{where} references none of the variants' Services and does not opt in; {hint} to let"
        " llmrollout set its weights"
    )


def render_backend_refs(
    route: Mapping[str, Any], weights: Mapping[str, int], backends: Mapping[str, Backend]
) -> dict[str, Any]:
    """A copy of `route` whose owned rules carry `weights` (percent); never mutates `route`.

    Variants left out of `weights` get 0. A variant with a positive weight and no backendRef in an
    owned rule gets one appended (kind Service, its port); one at 0 is not added, so a fallback whose
    Service does not exist yet does not make the route report an unresolved ref. If a rule lists one
    variant's Service twice, the first carries the weight and the others 0.
    """
    check_backends(backends)
    check_weights(weights, backends)
    new = copy.deepcopy(dict(route))
    spec = new.setdefault("spec", {})
    if not spec.get("rules"):
        # A rule with no matches matches every request, as the apiserver's default rule does.
        spec["rules"] = [{}]
    rules: list[dict[str, Any]] = spec["rules"]
    namespace = _namespace(new)
    for index in _owned_rules(rules, backends, namespace):
        rule = rules[index]
        refs: list[dict[str, Any]] = list(rule.get("backendRefs") or [])
        seen: set[str] = set()
        for ref in refs:
            variant = _variant_of(ref, backends, namespace)
            if variant is not None:
                ref["weight"] = 0 if variant in seen else weights.get(variant, 0)
                seen.add(variant)
        for variant, (name, port) in backends.items():
            if variant not in seen and weights.get(variant, 0) > 0:
                refs.append({"kind": "Service", "name": name, "port": port, "weight": weights[variant]})
        rule["backendRefs"] = refs
    return new


def _largest_remainder(shares: Mapping[str, float]) -> dict[str, int]:
    """Percentages from shares in [0, 1] that add up to round(100 * sum(shares))."""
    exact = {variant: 100 * share for variant, share in shares.items()}
    result = {variant: math.floor(value) for variant, value in exact.items()}
    missing = round(sum(exact.values())) - sum(result.values())
    # Ties go to the variant listed first, so the answer does not depend on set ordering.
    order = sorted(exact, key=lambda v: (-(exact[v] - result[v]), list(exact).index(v)))
    for variant in order[: max(missing, 0)]:
        result[variant] += 1
    return result


def weights_from_route(route: Mapping[str, Any], backends: Mapping[str, Backend]) -> dict[str, int]:
    """Variant -> percent of the traffic the owned rules send to the variants (0 for absent ones).

    Weights are proportional, so each rule's variant weights are turned into shares of that rule's
    variant total (backendRefs that are not ours do not count, or a user's extra backend would read
    as drift); rules that disagree are averaged, so a change to any one of them shows up. Rounding
    keeps the sum at 100 whenever some variant gets traffic.
    """
    check_backends(backends)
    rules: list[dict[str, Any]] = (route.get("spec") or {}).get("rules") or []
    namespace = _namespace(route)
    # The first rule is ours even without variant refs, but it sends the variants nothing.
    owned = _rules_with_variants(rules, backends, namespace)
    totals = dict.fromkeys(backends, 0.0)
    for index in owned:
        raw = dict.fromkeys(backends, 0.0)
        for ref in rules[index].get("backendRefs") or ():
            variant = _variant_of(ref, backends, namespace)
            if variant is not None:
                raw[variant] += float(ref.get("weight", DEFAULT_WEIGHT))
        rule_total = sum(raw.values())
        for variant, weight in raw.items():
            totals[variant] += weight / rule_total if rule_total > 0 else 0.0
    shares = {variant: total / len(owned) if owned else 0.0 for variant, total in totals.items()}
    return _largest_remainder(shares)


# --- the router -----------------------------------------------------------------------------------


class GatewayAPIRouter:
    """Sets and reads variant weights on one HTTPRoute through the Kubernetes API."""

    def __init__(
        self,
        api: Any,  # kubernetes.client.CustomObjectsApi
        namespace: str,
        route_name: str,
        backends: Mapping[str, Backend],
        *,
        owner: str | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        check_backends(backends)
        self.owner = owner  # the LLMDeployment's name, which an opted-in route's annotation carries
        self._api = api
        self.namespace = namespace
        self.route_name = route_name
        self.backends = dict(backends)
        self._timeout = request_timeout

    def read_route(self) -> dict[str, Any]:
        with self._errors("read"):
            route = self._api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.route_name, _request_timeout=self._timeout
            )
        if not isinstance(route, dict):
            raise RouterError(f"HTTPRoute {self.namespace}/{self.route_name}: unexpected answer {route!r}")
        return route

    def read_weights(self) -> dict[str, int]:
        route = self.read_route()
        check_owned(route, self.backends, self.owner)
        return weights_from_route(route, self.backends)

    def set_weights(self, weights: Mapping[str, int]) -> None:
        check_weights(weights, self.backends)
        # One retry: a 409 means the route changed between our read and our write (typically the
        # user editing it); re-reading keeps their change. A second 409 is reported, not looped on.
        for attempt in (1, 2):
            route = self.read_route()
            check_owned(route, self.backends, self.owner)
            new = render_backend_refs(route, weights, self.backends)
            rules = new["spec"]["rules"]
            if rules == (route.get("spec") or {}).get("rules"):
                return
            patch = {
                "metadata": {"resourceVersion": route["metadata"]["resourceVersion"]},
                "spec": {"rules": rules},
            }
            try:
                with self._errors("update"):
                    self._api.patch_namespaced_custom_object(
                        GROUP,
                        VERSION,
                        self.namespace,
                        PLURAL,
                        self.route_name,
                        patch,
                        field_manager=FIELD_MANAGER,
                        _content_type="application/merge-patch+json",
                        _request_timeout=self._timeout,
                    )
                return
            except RouteConflictError:
                if attempt == 2:
                    raise

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return _api_errors(self.namespace, self.route_name, action)


@contextmanager
def _api_errors(namespace: str, name: str, action: str) -> Iterator[None]:
    """Turns the Kubernetes client's exceptions into RouterErrors that name the route and the cause."""
    where = f"HTTPRoute {namespace}/{name}"
    try:
        yield
    except ApiException as err:
        status = _status_body(err)
        message = status.get("message") or err.reason or "no message"
        if err.status == 404:
            if (status.get("details") or {}).get("name") == name:
                raise RouteNotFoundError(namespace, name) from err
            # No object name in the answer: the resource type itself is not served.
            raise RouterError(
                f"cannot {action} {where}: the cluster does not serve {PLURAL}.{GROUP}/{VERSION}; "
                "install the Gateway API CRDs (hack/install-gateway-api.sh)"
            ) from err
        if err.status == 409:
            raise RouteConflictError(
                f"{where} kept changing while its weights were updated: {message}"
            ) from err
        if err.status in (401, 403):
            raise RouterError(
                f"not allowed to {action} {where} (check the operator's RBAC): {message}"
            ) from err
        if err.status == 422:
            raise RouterError(f"the apiserver rejected the new weights for {where}: {message}") from err
        raise RouterError(f"cannot {action} {where}: HTTP {err.status} {err.reason}: {message}") from err
    except (urllib3.exceptions.HTTPError, OSError) as err:
        raise RouterError(
            f"cannot {action} {where}: Kubernetes API unreachable: {type(err).__name__}: {err}"
        ) from err


def _status_body(err: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(err.body) if err.body else {}
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}
