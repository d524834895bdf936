"""The Gateway API router against the real apiserver with the standard-channel Gateway API CRDs.

The HTTPRoute is the user's: parentRefs, hostnames, matches, filters, another backend and another rule
must come back exactly as written, whatever weights the router sets.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from llmrollout.routers import GatewayAPIRouter, RouteNotFoundError, drift, weights_from_route

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

BACKENDS = {"v1": ("bot-v1", 8000), "v2": ("bot-v2", 8000), "hosted": ("openai-egress", 443)}
CHAT_RULE = {
    "matches": [
        {"path": {"type": "PathPrefix", "value": "/v1/chat"}, "headers": [{"name": "x-team", "value": "a"}]}
    ],
    "filters": [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {"add": [{"name": "x-via", "value": "gw"}]},
        }
    ],
    "backendRefs": [{"name": "bot-v1", "port": 8000}, {"name": "shadow", "port": 80, "weight": 2}],
}
ADMIN_RULE = {
    "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
    "backendRefs": [{"name": "admin", "port": 8080}],
}


def user_route(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": "bot",
            "namespace": namespace,
            "labels": {"app": "bot"},
            "annotations": {"team": "a"},
        },
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "infra", "sectionName": "https"}],
            "hostnames": ["bot.example.com"],
            "rules": [CHAT_RULE, ADMIN_RULE],
        },
    }


@pytest.fixture
def custom_objects(kube: Any) -> Iterator[Any]:
    with kube.api_client() as api_client:
        yield client.CustomObjectsApi(api_client)


def get_route(kube: Any, namespace: str) -> dict[str, Any]:
    route: dict[str, Any] = json.loads(
        kube.kubectl("get", "httproute", "bot", "-n", namespace, "-o", "json", "--show-managed-fields").stdout
    )
    return route


def without_variant_weights(route: dict[str, Any]) -> dict[str, Any]:
    """The route minus what the router may change, minus what the apiserver changes on any write."""
    kept = copy.deepcopy(route)
    for key in ("resourceVersion", "generation", "managedFields"):
        kept["metadata"].pop(key, None)
    variant_refs = {backend for backend in BACKENDS.values()}
    for rule in kept["spec"]["rules"]:
        rule["backendRefs"] = [
            ref for ref in rule.get("backendRefs", []) if (ref["name"], ref.get("port")) not in variant_refs
        ]
    return kept


def test_router_sets_reads_and_detects_drift(
    kube: Any, namespace: str, gateway_api: str, custom_objects: Any
) -> None:
    assert "v1" in gateway_api.split(",")
    kube.kubectl("apply", "-f", "-", input=json.dumps(user_route(namespace)))
    before = get_route(kube, namespace)
    router = GatewayAPIRouter(custom_objects, namespace, "bot", BACKENDS)

    # The apiserver defaulted the user's weightless ref to 1; the shadow backend does not count.
    assert router.read_weights() == {"v1": 100, "v2": 0, "hosted": 0}

    router.set_weights({"v1": 75, "v2": 25})
    after = get_route(kube, namespace)
    assert router.read_weights() == {"v1": 75, "v2": 25, "hosted": 0}
    chat_refs = after["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["port"], r["weight"]) for r in chat_refs] == [
        ("bot-v1", 8000, 75),
        ("shadow", 80, 2),
        ("bot-v2", 8000, 25),
    ]
    assert chat_refs[2]["kind"] == "Service"
    assert without_variant_weights(after) == without_variant_weights(before)
    assert after["spec"]["rules"][1] == before["spec"]["rules"][1]
    assert any(m["manager"] == "llmrollout" for m in after["metadata"]["managedFields"])

    # Setting what is already there writes nothing.
    router.set_weights({"v1": 75, "v2": 25})
    assert get_route(kube, namespace)["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]

    # Someone else moves traffic with kubectl: the router reads it and drift names it.
    kube.kubectl(
        "patch", "httproute", "bot", "-n", namespace, "--type=json",
        "-p", json.dumps([{"op": "replace", "path": "/spec/rules/0/backendRefs/2/weight", "value": 75}]),
    )  # fmt: skip
    edited = router.read_weights()
    assert edited == weights_from_route(get_route(kube, namespace), BACKENDS)
    assert edited == {"v1": 50, "v2": 50, "hosted": 0}
    assert drift({"v1": 75, "v2": 25}, edited) == {"v1": (75, 50), "v2": (25, 50)}

    # Setting the weights again repairs it; a variant left out goes to 0, its backendRef stays.
    router.set_weights({"v1": 100})
    assert drift({"v1": 100}, router.read_weights()) == {}
    refs = get_route(kube, namespace)["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("bot-v1", 100), ("shadow", 2), ("bot-v2", 0)]


class EditsBeforeFirstPatch:
    """A CustomObjectsApi whose first patch races a user's edit made between our read and our write."""

    def __init__(self, api: Any, edit: Any) -> None:
        self._api, self._edit, self.patches = api, edit, 0

    def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        return self._api.get_namespaced_custom_object(*args, **kwargs)

    def patch_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        self.patches += 1
        if self.patches == 1:
            self._edit()
        return self._api.patch_namespaced_custom_object(*args, **kwargs)


def test_a_concurrent_edit_is_kept_not_overwritten(
    kube: Any, namespace: str, gateway_api: str, custom_objects: Any
) -> None:
    kube.kubectl("apply", "-f", "-", input=json.dumps(user_route(namespace)))

    def user_moves_admin() -> None:
        # In spec.rules, the very list the router writes back: a stale write would undo it.
        move = [{"op": "replace", "path": "/spec/rules/1/matches/0/path/value", "value": "/ops"}]
        kube.kubectl("patch", "httproute", "bot", "-n", namespace, "--type=json", "-p", json.dumps(move))

    racing = EditsBeforeFirstPatch(custom_objects, user_moves_admin)
    GatewayAPIRouter(racing, namespace, "bot", BACKENDS).set_weights({"v1": 95, "v2": 5})

    assert racing.patches == 2, "the stale write must be refused (409) and retried from a fresh read"
    route = get_route(kube, namespace)
    assert route["spec"]["rules"][1]["matches"][0]["path"]["value"] == "/ops"
    assert weights_from_route(route, BACKENDS) == {"v1": 95, "v2": 5, "hosted": 0}


def test_a_missing_route_is_named(kube: Any, namespace: str, gateway_api: str, custom_objects: Any) -> None:
    router = GatewayAPIRouter(custom_objects, namespace, "nope", BACKENDS)
    with pytest.raises(RouteNotFoundError, match=f"HTTPRoute {namespace}/nope not found"):
        router.read_weights()
    with pytest.raises(RouteNotFoundError):
        router.set_weights({"v1": 100})
