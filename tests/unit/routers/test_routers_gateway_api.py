"""HTTPRoute weights by tables: what is written, what is read back, what is left alone."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from llmrollout.routers import (
    GatewayAPIRouter,
    RouteConflictError,
    RouteNotFoundError,
    RouterError,
    render_backend_refs,
    weights_from_route,
)

BACKENDS = {"v1": ("bot-v1", 8000), "v2": ("bot-v2", 8000), "hosted": ("openai-egress", 443)}
PARENT = [{"name": "gw", "namespace": "infra", "sectionName": "http"}]
MATCH_CHAT = [{"path": {"type": "PathPrefix", "value": "/v1/chat"}}]
HEADER_FILTER = [
    {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x", "value": "1"}]}}
]


def svc(name: str, port: int, weight: int | None = None, **extra: Any) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "port": port, **extra}
    if weight is not None:
        ref["weight"] = weight
    return ref


def route(*rules: dict[str, Any], namespace: str = "team-a") -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "bot", "namespace": namespace, "resourceVersion": "7", "labels": {"app": "bot"}},
        "spec": {"parentRefs": PARENT, "hostnames": ["bot.example.com"], "rules": list(rules)},
        "status": {"parents": [{"parentRef": PARENT[0], "controllerName": "example.com/gw"}]},
    }


RENDER_CASES = [
    (
        "existing ref gets its weight, missing candidate is appended as a Service ref",
        route({"matches": MATCH_CHAT, "backendRefs": [svc("bot-v1", 8000)]}),
        {"v1": 75, "v2": 25},
        [
            {
                "matches": MATCH_CHAT,
                "backendRefs": [svc("bot-v1", 8000, 75), svc("bot-v2", 8000, 25, kind="Service")],
            }
        ],
    ),
    (
        "a user's other backendRef in the same rule keeps its weight and place",
        route({"backendRefs": [svc("shadow", 80, 3), svc("bot-v1", 8000, 100), svc("bot-v2", 8000, 0)]}),
        {"v1": 50, "v2": 50},
        [{"backendRefs": [svc("shadow", 80, 3), svc("bot-v1", 8000, 50), svc("bot-v2", 8000, 50)]}],
    ),
    (
        "only rules that reference a variant are touched",
        route(
            {"matches": [{"path": {"value": "/admin"}}], "backendRefs": [svc("admin", 80)]},
            {"matches": MATCH_CHAT, "filters": HEADER_FILTER, "backendRefs": [svc("bot-v1", 8000, 1)]},
        ),
        {"v1": 95, "v2": 5},
        [
            {"matches": [{"path": {"value": "/admin"}}], "backendRefs": [svc("admin", 80)]},
            {
                "matches": MATCH_CHAT,
                "filters": HEADER_FILTER,
                "backendRefs": [svc("bot-v1", 8000, 95), svc("bot-v2", 8000, 5, kind="Service")],
            },
        ],
    ),
    (
        "every rule that references a variant gets the same split",
        route(
            {"matches": MATCH_CHAT, "backendRefs": [svc("bot-v1", 8000, 100)]},
            {"matches": [{"path": {"value": "/v1/completions"}}], "backendRefs": [svc("bot-v2", 8000, 3)]},
        ),
        {"v1": 75, "v2": 25},
        [
            {
                "matches": MATCH_CHAT,
                "backendRefs": [svc("bot-v1", 8000, 75), svc("bot-v2", 8000, 25, kind="Service")],
            },
            {
                "matches": [{"path": {"value": "/v1/completions"}}],
                "backendRefs": [svc("bot-v2", 8000, 25), svc("bot-v1", 8000, 75, kind="Service")],
            },
        ],
    ),
    (
        "no rule references a variant: the first rule is ours",
        route(
            {"matches": MATCH_CHAT, "backendRefs": [svc("legacy", 80)]},
            {"matches": [{"path": {"value": "/other"}}], "backendRefs": [svc("other", 80)]},
        ),
        {"v1": 100},
        [
            {
                "matches": MATCH_CHAT,
                "backendRefs": [svc("legacy", 80), svc("bot-v1", 8000, 100, kind="Service")],
            },
            {"matches": [{"path": {"value": "/other"}}], "backendRefs": [svc("other", 80)]},
        ],
    ),
    (
        "a rule without backendRefs gets them",
        route({"matches": MATCH_CHAT}),
        {"v1": 60, "hosted": 40},
        [
            {
                "matches": MATCH_CHAT,
                "backendRefs": [
                    svc("bot-v1", 8000, 60, kind="Service"),
                    svc("openai-egress", 443, 40, kind="Service"),
                ],
            }
        ],
    ),
    (
        "a route without rules gets one catch-all rule",
        route(),
        {"v2": 100},
        [{"backendRefs": [svc("bot-v2", 8000, 100, kind="Service")]}],
    ),
    (
        "variants left out go to 0; a missing one at 0 is not added",
        route({"backendRefs": [svc("bot-v1", 8000, 50), svc("bot-v2", 8000, 50)]}),
        {"v1": 100, "hosted": 0},
        [{"backendRefs": [svc("bot-v1", 8000, 100), svc("bot-v2", 8000, 0)]}],
    ),
    (
        "a Service listed twice: the first carries the weight",
        route({"backendRefs": [svc("bot-v1", 8000, 1), svc("bot-v2", 8000, 1), svc("bot-v1", 8000, 1)]}),
        {"v1": 10, "v2": 90},
        [{"backendRefs": [svc("bot-v1", 8000, 10), svc("bot-v2", 8000, 90), svc("bot-v1", 8000, 0)]}],
    ),
    (
        "explicit core group, kind and own namespace still match",
        route({"backendRefs": [svc("bot-v1", 8000, 1, group="", kind="Service", namespace="team-a")]}),
        {"v1": 30, "v2": 70},
        [
            {
                "backendRefs": [
                    svc("bot-v1", 8000, 30, group="", kind="Service", namespace="team-a"),
                    svc("bot-v2", 8000, 70, kind="Service"),
                ]
            }
        ],
    ),
    (
        "same name on another port, in another namespace or of another kind is not ours",
        route(
            {
                "backendRefs": [
                    svc("bot-v1", 9000, 5),
                    svc("bot-v1", 8000, 5, namespace="other"),
                    svc("bot-v1", 8000, 5, group="inference.networking.k8s.io", kind="InferencePool"),
                    svc("bot-v2", 8000, 1),
                ]
            }
        ),
        {"v1": 100},
        [
            {
                "backendRefs": [
                    svc("bot-v1", 9000, 5),
                    svc("bot-v1", 8000, 5, namespace="other"),
                    svc("bot-v1", 8000, 5, group="inference.networking.k8s.io", kind="InferencePool"),
                    svc("bot-v2", 8000, 0),
                    svc("bot-v1", 8000, 100, kind="Service"),
                ]
            }
        ],
    ),
]


@pytest.mark.parametrize(
    ("why", "before", "weights", "rules"), RENDER_CASES, ids=[c[0] for c in RENDER_CASES]
)
def test_render_backend_refs(
    why: str, before: dict[str, Any], weights: dict[str, int], rules: list[Any]
) -> None:
    pristine = copy.deepcopy(before)
    after = render_backend_refs(before, weights, BACKENDS)
    assert before == pristine, "the input route must not change"
    assert after["spec"]["rules"] == rules
    # Everything but spec.rules is exactly what was read.
    assert {k: v for k, v in after.items() if k != "spec"} == {k: v for k, v in before.items() if k != "spec"}
    assert {k: v for k, v in after["spec"].items() if k != "rules"} == {
        k: v for k, v in before["spec"].items() if k != "rules"
    }


@pytest.mark.parametrize(
    ("why", "before", "weights", "rules"), RENDER_CASES, ids=[c[0] for c in RENDER_CASES]
)
def test_what_is_rendered_reads_back(
    why: str, before: dict[str, Any], weights: dict[str, int], rules: Any
) -> None:
    expected = {variant: weights.get(variant, 0) for variant in BACKENDS}
    assert weights_from_route(render_backend_refs(before, weights, BACKENDS), BACKENDS) == expected


def test_the_result_shares_nothing_with_the_input() -> None:
    before = route({"matches": MATCH_CHAT, "backendRefs": [svc("bot-v1", 8000, 100)]})
    after = render_backend_refs(before, {"v1": 100}, BACKENDS)
    after["spec"]["rules"][0]["matches"][0]["path"]["value"] = "/changed"
    after["metadata"]["labels"]["app"] = "changed"
    assert before["spec"]["rules"][0]["matches"][0]["path"]["value"] == "/v1/chat"
    assert before["metadata"]["labels"]["app"] == "bot"


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"v1": 50, "v2": 40}, "sum to 100"),
        ({"v1": 0}, "sum to 100"),
        ({}, "sum to 100"),
        ({"v1": 100, "v3": 0}, "unknown variant"),
        ({"v1": 101, "v2": -1}, "0..100"),
        ({"v1": 99.5, "v2": 0.5}, "integer"),
        ({"v1": True, "v2": 99}, "integer"),
    ],
)
def test_render_refuses_bad_weights(weights: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_backend_refs(route(), weights, BACKENDS)


@pytest.mark.parametrize(
    ("backends", "message"),
    [
        ({"v1": ("bot", 8000), "v2": ("bot", 8000)}, "share backend bot:8000"),
        ({"v1": ("", 8000)}, "Service name"),
        ({"v1": ("bot", 0)}, "port"),
        ({"v1": ("bot", 70000)}, "port"),
    ],
)
def test_render_refuses_bad_backends(backends: dict[str, tuple[str, int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_backend_refs(route(), {"v1": 100}, backends)


@pytest.mark.parametrize(
    ("why", "rules", "expected"),
    [
        (
            "percent as written",
            [{"backendRefs": [svc("bot-v1", 8000, 75), svc("bot-v2", 8000, 25)]}],
            (75, 25, 0),
        ),
        (
            "proportional, any scale",
            [{"backendRefs": [svc("bot-v1", 8000, 900000), svc("bot-v2", 8000, 100000)]}],
            (90, 10, 0),
        ),
        ("no weight means 1", [{"backendRefs": [svc("bot-v1", 8000), svc("bot-v2", 8000, 3)]}], (25, 75, 0)),
        (
            "thirds round to a sum of 100",
            [{"backendRefs": [svc("bot-v1", 8000, 1), svc("bot-v2", 8000, 1), svc("openai-egress", 443, 1)]}],
            (34, 33, 33),
        ),
        (
            "a tie goes to the variant listed first",
            [{"backendRefs": [svc("bot-v1", 8000, 199), svc("bot-v2", 8000, 1)]}],
            (100, 0, 0),
        ),
        (
            "a sliver still rounds to 0",
            [{"backendRefs": [svc("bot-v1", 8000, 999), svc("bot-v2", 8000, 1)]}],
            (100, 0, 0),
        ),
        (
            "other backends do not count",
            [{"backendRefs": [svc("shadow", 80, 100), svc("bot-v1", 8000, 50), svc("bot-v2", 8000, 50)]}],
            (50, 50, 0),
        ),
        (
            "duplicates add up",
            [{"backendRefs": [svc("bot-v1", 8000, 1), svc("bot-v2", 8000, 2), svc("bot-v1", 8000, 1)]}],
            (50, 50, 0),
        ),
        (
            "all zero sends the variants nothing",
            [{"backendRefs": [svc("bot-v1", 8000, 0), svc("bot-v2", 8000, 0)]}],
            (0, 0, 0),
        ),
        ("no variant anywhere", [{"backendRefs": [svc("legacy", 80)]}], (0, 0, 0)),
        ("no rules", [], (0, 0, 0)),
        (
            "rules that disagree are averaged, so drift in any one shows",
            [
                {"backendRefs": [svc("bot-v1", 8000, 75), svc("bot-v2", 8000, 25)]},
                {"backendRefs": [svc("bot-v1", 8000, 25), svc("bot-v2", 8000, 75)]},
                {"backendRefs": [svc("unrelated", 80)]},
            ],
            (50, 50, 0),
        ),
        (
            "a rule missing a variant counts it as 0",
            [
                {"backendRefs": [svc("bot-v1", 8000, 50), svc("bot-v2", 8000, 50)]},
                {"backendRefs": [svc("bot-v1", 8000, 1)]},
            ],
            (75, 25, 0),
        ),
    ],
)
def test_weights_from_route(why: str, rules: list[Any], expected: tuple[int, int, int]) -> None:
    assert weights_from_route(route(*rules), BACKENDS) == dict(zip(BACKENDS, expected, strict=True))


# --- the router over a fake CustomObjectsApi (no I/O) ----------------------------------------------


def api_error(status: int, body: dict[str, Any] | str | None = None) -> ApiException:
    err = ApiException(
        status=status, reason={404: "Not Found", 409: "Conflict", 422: "Unprocessable"}.get(status, "Err")
    )
    err.body = json.dumps(body) if isinstance(body, dict) else body
    return err


class FakeCustomObjects:
    """Serves one route; `gets`/`patches` record calls; queued errors are raised by the next call."""

    def __init__(self, stored: dict[str, Any] | None) -> None:
        self.stored = stored
        self.gets = 0
        self.patches: list[dict[str, Any]] = []
        self.get_errors: list[Exception] = []
        self.patch_errors: list[Exception] = []
        self.kwargs: list[dict[str, Any]] = []

    def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        assert args == ("gateway.networking.k8s.io", "v1", "team-a", "httproutes", "bot")
        self.gets += 1
        if self.get_errors:
            raise self.get_errors.pop(0)
        assert self.stored is not None
        return copy.deepcopy(self.stored)

    def patch_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        assert args[:5] == ("gateway.networking.k8s.io", "v1", "team-a", "httproutes", "bot")
        self.patches.append(args[5])
        self.kwargs.append(kwargs)
        if self.patch_errors:
            raise self.patch_errors.pop(0)
        return {}


def router(api: FakeCustomObjects) -> GatewayAPIRouter:
    return GatewayAPIRouter(api, "team-a", "bot", BACKENDS)


def test_set_weights_patches_only_rules_with_the_resource_version() -> None:
    api = FakeCustomObjects(route({"backendRefs": [svc("bot-v1", 8000, 100)]}))
    router(api).set_weights({"v1": 95, "v2": 5})
    assert api.patches == [
        {
            "metadata": {"resourceVersion": "7"},
            "spec": {
                "rules": [{"backendRefs": [svc("bot-v1", 8000, 95), svc("bot-v2", 8000, 5, kind="Service")]}]
            },
        }
    ]
    assert api.kwargs[0]["_content_type"] == "application/merge-patch+json"
    assert api.kwargs[0]["field_manager"] == "llmrollout"


def test_set_weights_that_are_already_there_sends_nothing() -> None:
    api = FakeCustomObjects(route({"backendRefs": [svc("bot-v1", 8000, 75), svc("bot-v2", 8000, 25)]}))
    router(api).set_weights({"v1": 75, "v2": 25})
    assert api.patches == []


def test_a_conflict_is_retried_once_from_a_fresh_read() -> None:
    api = FakeCustomObjects(route({"backendRefs": [svc("bot-v1", 8000, 100)]}))
    api.patch_errors = [api_error(409, {"message": "the object has been modified"})]
    router(api).set_weights({"v1": 50, "v2": 50})
    assert (api.gets, len(api.patches)) == (2, 2)


def test_a_second_conflict_is_reported() -> None:
    api = FakeCustomObjects(route({"backendRefs": [svc("bot-v1", 8000, 100)]}))
    api.patch_errors = [
        api_error(409, {"message": "modified"}),
        api_error(409, {"message": "modified again"}),
    ]
    with pytest.raises(RouteConflictError, match=r"team-a/bot kept changing.*modified again"):
        router(api).set_weights({"v1": 50, "v2": 50})
    assert len(api.patches) == 2


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (
            api_error(404, {"reason": "NotFound", "details": {"name": "bot", "kind": "httproutes"}}),
            RouteNotFoundError,
            "HTTPRoute team-a/bot not found",
        ),
        (
            api_error(404, "404 page not found"),
            RouterError,
            "does not serve httproutes.*install the Gateway API",
        ),
        (api_error(403, {"message": "forbidden: User cannot get"}), RouterError, "RBAC.*forbidden"),
        (api_error(500, {"message": "etcd timeout"}), RouterError, "HTTP 500.*etcd timeout"),
        (ConnectionRefusedError(111, "Connection refused"), RouterError, "Kubernetes API unreachable"),
    ],
)
def test_read_errors_name_the_route_and_the_cause(
    error: Exception, kind: type[Exception], message: str
) -> None:
    api = FakeCustomObjects(None)
    api.get_errors = [error]
    with pytest.raises(kind, match=message) as raised:
        router(api).read_weights()
    if isinstance(raised.value, RouteNotFoundError):
        assert (raised.value.namespace, raised.value.name) == ("team-a", "bot")


def test_a_rejected_patch_says_so() -> None:
    api = FakeCustomObjects(route({"backendRefs": [svc("bot-v1", 8000, 100)]}))
    api.patch_errors = [api_error(422, {"message": "spec.rules[0].backendRefs: Too many: 17"})]
    with pytest.raises(RouterError, match=r"rejected the new weights for HTTPRoute team-a/bot.*Too many"):
        router(api).set_weights({"v2": 100})


def test_bad_weights_are_refused_before_any_call() -> None:
    api = FakeCustomObjects(route())
    with pytest.raises(ValueError, match="sum to 100"):
        router(api).set_weights({"v1": 50})
    assert api.gets == 0


def test_a_route_that_is_not_ours_is_neither_read_nor_written() -> None:
    api = FakeCustomObjects(route({"backendRefs": [svc("payments", 80, 100)]}))
    with pytest.raises(RouterError, match="does not opt in"):
        router(api).read_weights()
    with pytest.raises(RouterError, match="does not opt in"):
        router(api).set_weights({"v1": 100})
    assert api.patches == []
