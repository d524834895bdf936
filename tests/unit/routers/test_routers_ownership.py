"""Which HTTPRoutes llmrollout may change: one that opts in for this LLMDeployment, or one that
already references a variant's Service; never someone else's route that a spec happens to name."""

from __future__ import annotations

from typing import Any

import pytest

from llmrollout.routers import OWNER_ANNOTATION, RouteNotOptedInError, check_owned

BACKENDS = {"v1": ("bot-v1", 8000), "v2": ("bot-v2", 8000)}


def route(refs: list[dict[str, Any]], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "r", "namespace": "team-a", "annotations": annotations or {}},
        "spec": {"rules": [{"backendRefs": refs}]},
    }


PAYMENTS = [{"name": "payments", "port": 80}]
OURS = [{"name": "bot-v1", "port": 8000}]


@pytest.mark.parametrize(
    ("given", "owner", "allowed", "said"),
    [
        (route(OURS), "bot", True, ""),
        (route(OURS), None, True, ""),
        (route(PAYMENTS), "bot", False, "references none of the variants' Services"),
        (route([]), "bot", False, f"annotate it {OWNER_ANNOTATION}=bot"),
        (route(PAYMENTS, {OWNER_ANNOTATION: "bot"}), "bot", True, ""),
        (route([], {OWNER_ANNOTATION: "bot"}), "bot", True, ""),
        # An annotation naming another LLMDeployment wins over refs: that one owns the route.
        (route(OURS, {OWNER_ANNOTATION: "other"}), "bot", False, "belongs to LLMDeployment 'other'"),
        (route(PAYMENTS, {OWNER_ANNOTATION: "bot"}), None, False, "belongs to LLMDeployment 'bot'"),
        # Same Service name on another port, or in another namespace, is not a variant's backend.
        (route([{"name": "bot-v1", "port": 9000}]), "bot", False, "references none"),
        (route([{"name": "bot-v1", "port": 8000, "namespace": "other"}]), "bot", False, "references none"),
        ({"metadata": {"name": "r", "namespace": "team-a"}}, "bot", False, "HTTPRoute team-a/r"),
    ],
)
def test_check_owned(given: dict[str, Any], owner: str | None, allowed: bool, said: str) -> None:
    if allowed:
        check_owned(given, BACKENDS, owner)
    else:
        with pytest.raises(RouteNotOptedInError, match=said.replace("(", r"\(").replace(")", r"\)")):
            check_owned(given, BACKENDS, owner)
