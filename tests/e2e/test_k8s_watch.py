"""llmrollout.k8s.watch on the real apiserver: the listing, then every change in order, one namespace
kept apart from another, and a stream cut mid-way resumed from where it was without listing again."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from llmrollout.api import GROUP, PLURAL, VERSION
from llmrollout.k8s.clients import api_client
from llmrollout.k8s.watch import ObjectWatch, Resource
from tests.e2e.cluster import REPO, Kube, write_status_retrying

RESOURCE = Resource(GROUP, VERSION, PLURAL)


class Seen:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str | None, str, str]] = []  # (type, name, the label "mark")
        self.versions: list[str] = []

    def __call__(self, kind: str | None, obj: dict[str, Any]) -> None:
        mark = (obj["metadata"].get("labels") or {}).get("mark", "")
        with self.lock:
            self.events.append((kind, obj["metadata"]["name"], mark))
            self.versions.append(obj["metadata"].get("resourceVersion", ""))

    def of(self, name: str) -> list[tuple[str | None, str]]:
        """(type, mark) per event of `name`, less MODIFIED events that kept the mark: the session's
        operator, when one runs, writes status too."""
        with self.lock:
            events = [(kind, mark) for kind, n, mark in self.events if n == name]
        return [
            e for i, e in enumerate(events) if not (i and e[0] == "MODIFIED" and e[1] == events[i - 1][1])
        ]


def _wait(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not seen within {timeout:.0f}s: {what}")


def _apply(kube: Kube, namespace: str, name: str, mark: str = "v1") -> None:
    manifest: dict[str, Any] = yaml.safe_load((REPO / "examples/basic.yaml").read_text())
    manifest["metadata"] = {"name": name, "namespace": namespace, "labels": {"mark": mark}}
    manifest["spec"]["paused"] = True  # the session's operator (if any) leaves it alone
    kube.kubectl("apply", "-f", "-", input=json.dumps(manifest))


@pytest.fixture
def api(kube: Kube) -> client.ApiClient:
    return api_client(kube.kubeconfig)


@pytest.fixture
def watch_of(api: client.ApiClient) -> Iterator[Callable[[str], tuple[ObjectWatch, Seen]]]:
    started: list[ObjectWatch] = []

    def start(namespace: str) -> tuple[ObjectWatch, Seen]:
        seen = Seen()
        watch = ObjectWatch(api, RESOURCE, namespace, seen)
        watch.start()
        started.append(watch)
        assert watch.listed.wait(20), "the first listing did not arrive"
        return watch, seen

    yield start
    for watch in started:
        watch.stop()


def test_the_listing_then_every_change_arrives_in_order(
    kube: Kube, namespace: str, watch_of: Callable[[str], tuple[ObjectWatch, Seen]]
) -> None:
    _apply(kube, namespace, "before")
    watch, seen = watch_of(namespace)
    assert seen.of("before") == [(None, "v1")]
    _apply(kube, namespace, "after")
    _apply(kube, namespace, "after", mark="v2")
    kube.kubectl("delete", "llmdeployment", "after", "-n", namespace)
    _wait(lambda: [kind for kind, _ in seen.of("after")][-1:] == ["DELETED"], "the deletion of 'after'")
    assert seen.of("after") == [("ADDED", "v1"), ("MODIFIED", "v2"), ("DELETED", "v2")]
    assert watch.alive()


def test_each_watch_sees_its_own_namespace_only(
    kube: Kube, namespace: str, watch_of: Callable[[str], tuple[ObjectWatch, Seen]]
) -> None:
    other = f"{namespace}-b"
    kube.kubectl("create", "namespace", other)
    try:
        _, mine = watch_of(namespace)
        _, theirs = watch_of(other)
        _apply(kube, namespace, "chat")
        _apply(kube, other, "chat", mark="v9")
        _wait(lambda: bool(mine.of("chat")) and bool(theirs.of("chat")), "both objects")
        time.sleep(1.0)  # anything crossing over would have arrived by now
        assert mine.of("chat") == [("ADDED", "v1")]
        assert theirs.of("chat") == [("ADDED", "v9")]
    finally:
        kube.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_a_cut_stream_resumes_where_it_was_without_listing_again(
    kube: Kube, namespace: str, watch_of: Callable[[str], tuple[ObjectWatch, Seen]]
) -> None:
    _apply(kube, namespace, "chat")
    watch, seen = watch_of(namespace)
    _wait(watch.streaming, "the watch stream")
    watch.interrupt()  # as a proxy or an apiserver restart drops the stream
    _wait(lambda: not watch.streaming(), "the cut")
    _apply(kube, namespace, "chat", mark="v2")
    _wait(lambda: seen.of("chat")[-1:] == [("MODIFIED", "v2")], "the change made after the cut")
    assert seen.of("chat") == [(None, "v1"), ("MODIFIED", "v2")]
    assert (watch.listings, watch.streams) == (1, 2)
    assert watch.alive()


def test_our_own_writes_are_passed_over_and_the_stream_goes_on(
    api: client.ApiClient, kube: Kube, namespace: str
) -> None:
    _apply(kube, namespace, "chat")
    mine: set[tuple[str, str]] = set()
    registered = threading.Event()

    def ours(version: str, uid: str) -> bool:
        # The event of our write can arrive before the write's answer: the stream waits until the
        # answer's version is registered (the operator, in that race, just parses the event).
        registered.wait(20)
        return (version, uid) in mine

    seen = Seen()
    watch = ObjectWatch(api, RESOURCE, namespace, seen, ours=ours)
    watch.start()
    try:
        assert watch.listed.wait(20)

        def marked(current: dict[str, Any]) -> dict[str, Any]:
            return {**(current.get("status") or {}), "candidate": "own-write-mark"}

        written = write_status_retrying(api, namespace, "chat", marked)
        meta = written["metadata"]
        mine.add((meta["resourceVersion"], meta["uid"]))
        registered.set()
        _apply(kube, namespace, "chat", mark="v2")  # someone else's change, after ours
        _wait(lambda: seen.of("chat")[-1:] == [("MODIFIED", "v2")], "the change after our write")
        with seen.lock:
            delivered = list(seen.versions)
        assert meta["resourceVersion"] not in delivered
        assert int(delivered[-1]) > int(meta["resourceVersion"])
    finally:
        watch.stop()
