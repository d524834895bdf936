"""Which Services a raw LLMDeployment spec points at (what the Services watch wakes it for)."""

from __future__ import annotations

import asyncio

import kopf

from llmrollout.handlers.llmdeployment import backend_names, service_seen
from llmrollout.k8s import ServiceWatch


def test_backend_names_of_a_raw_spec_skip_what_is_malformed() -> None:
    spec = {
        "variants": [
            {"name": "v1", "backendRef": {"name": "bot-v1", "port": 80}},
            {"name": "v2", "backendRef": {"port": 80}},
            {"name": "v3", "backendRef": "bot-v3"},
            "junk",
            {"name": "v4", "backendRef": {"name": "bot-v4"}},
        ]
    }
    assert backend_names(spec) == ["bot-v1", "bot-v4"]
    assert backend_names({"variants": "x"}) == []
    assert backend_names(None) == []


class Woken:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def wake(self, key: str, at: float | None = None) -> None:
        self.keys.append(key)


def test_a_service_event_wakes_the_objects_pointing_at_it_but_the_initial_listing_does_not() -> None:
    memo = kopf.Memo(services=ServiceWatch(), scheduler=Woken())
    memo.services.refer("a/bot", "a", ["bot-v1", "bot-v2"])
    asyncio.run(service_seen(type=None, namespace="a", name="bot-v1", memo=memo))
    assert memo.scheduler.keys == [] and memo.services.exists("a", "bot-v1")
    asyncio.run(service_seen(type="ADDED", namespace="a", name="bot-v2", memo=memo))
    asyncio.run(service_seen(type="MODIFIED", namespace="a", name="bot-v2", memo=memo))
    asyncio.run(service_seen(type="ADDED", namespace="b", name="bot-v2", memo=memo))
    assert memo.scheduler.keys == ["a/bot"]
    asyncio.run(service_seen(type="DELETED", namespace="a", name="bot-v1", memo=memo))
    assert memo.scheduler.keys == ["a/bot", "a/bot"] and not memo.services.exists("a", "bot-v1")
