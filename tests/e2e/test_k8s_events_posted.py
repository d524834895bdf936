"""Events posted by llmrollout.k8s.events on the real apiserver, over the lean client and over the
kubernetes client: stored with the fields `kubectl describe` and the shard test read, and a refused
post is reported, never raised."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client, config

from llmrollout.k8s.clients import api_client
from llmrollout.k8s.events import NAME_PREFIX, EventPoster
from llmrollout.k8s.lean import lean_client_for
from tests.e2e.cluster import Kube


def _kubernetes_client_only(kubeconfig: str) -> client.ApiClient:
    """A client whose configuration the lean client does not cover (socket options are set)."""
    configuration = client.Configuration()
    configuration.socket_options = []
    return config.new_client_from_config(config_file=kubeconfig, client_configuration=configuration)


@pytest.fixture(params=["lean", "kubernetes-client"])
def api(request: pytest.FixtureRequest, kube: Kube) -> client.ApiClient:
    if request.param == "lean":
        built = api_client(kube.kubeconfig)
        assert lean_client_for(built) is not None
    else:
        built = _kubernetes_client_only(kube.kubeconfig)
        assert lean_client_for(built) is None
    return built


def _involved(namespace: str) -> dict[str, str]:
    return {
        "apiVersion": "llmrollout.io/v1alpha1",
        "kind": "LLMDeployment",
        "namespace": namespace,
        "name": "chat",
        "uid": "0b1e7a52-1111-4222-8333-944455556666",
    }


def _events(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    listing = kube.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(listing)["items"]
    return items


def test_an_event_is_stored_with_what_describe_and_the_shards_read(
    api: client.ApiClient, kube: Kube, namespace: str
) -> None:
    poster = EventPoster(api, "llmrollout", "pod-1-shard-0")
    assert poster.post(_involved(namespace), "Warning", "RolledBack", "v2 rolled back: é " + "x" * 1500)
    [event] = _events(kube, namespace)
    assert event["metadata"]["name"].startswith(NAME_PREFIX)
    assert event["involvedObject"] == _involved(namespace)
    assert (event["type"], event["reason"]) == ("Warning", "RolledBack")
    assert event["message"].startswith("v2 rolled back: é") and len(event["message"].encode()) <= 1024
    assert event["reportingComponent"] == "llmrollout" and event["source"] == {"component": "llmrollout"}
    assert event["reportingInstance"] == "pod-1-shard-0"
    assert event["lastTimestamp"] and event["count"] == 1


def test_a_refused_event_is_reported_not_raised(api: client.ApiClient, kube: Kube, namespace: str) -> None:
    poster = EventPoster(api, "llmrollout", "pod-1")
    gone = f"{namespace}-missing"  # no such namespace: the apiserver refuses the Event (404)
    assert not poster.post(_involved(gone), "Normal", "Promoted", "v2 promoted")
    assert poster.post(_involved(namespace), "Normal", "Promoted", "v2 promoted")  # the next one is stored
    assert [e["reason"] for e in _events(kube, namespace)] == ["Promoted"]
