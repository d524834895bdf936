"""Status writes over the lean path (llmrollout.k8s.lean) on the real apiserver: the same PUT as
the kubernetes client's, fenced by resourceVersion, under the same field manager, and a kept-alive
connection the server dropped is replaced."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import yaml
from kubernetes import client

from llmrollout.api import GROUP, PLURAL, VERSION
from llmrollout.k8s.clients import api_client
from llmrollout.k8s.lean import lean_client_for
from llmrollout.k8s.llmdeployments import (
    LLMDeploymentNotFoundError,
    StaleObjectError,
    get_llmdeployment,
    write_status,
)
from tests.e2e.cluster import REPO, Kube, write_status_retrying

# Far from anything the operator writes, so that a write of its own is told apart.
MARK = {"phase": "Progressing", "candidate": "lean-path-mark", "history": [], "conditions": []}


@pytest.fixture
def api(kube: Kube) -> client.ApiClient:
    return api_client(kube.kubeconfig)


@pytest.fixture
def llmd(kube: Kube, namespace: str) -> str:
    manifest: dict[str, Any] = yaml.safe_load((REPO / "examples/basic.yaml").read_text())
    manifest["metadata"] = {"name": "lean-put", "namespace": namespace}
    kube.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    return "lean-put"


def _write(api: client.ApiClient, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    return write_status_retrying(api, namespace, name, lambda _: status)


def test_the_kubeconfig_of_the_local_cluster_takes_the_lean_path(api: client.ApiClient) -> None:
    assert lean_client_for(api) is not None


def test_a_write_at_the_current_version_replaces_status_and_a_stale_one_is_refused(
    api: client.ApiClient, namespace: str, llmd: str
) -> None:
    before = get_llmdeployment(api, namespace, llmd)
    written = _write(api, namespace, llmd, MARK)
    assert written["status"]["candidate"] == "lean-path-mark"
    assert written["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    with pytest.raises(StaleObjectError):
        write_status(api, namespace, llmd, before["metadata"]["resourceVersion"], MARK)
    with pytest.raises(LLMDeploymentNotFoundError):
        write_status(api, namespace, "no-such-llmd", "1", MARK)


def test_a_refused_status_is_an_api_exception_naming_the_field(
    api: client.ApiClient, namespace: str, llmd: str
) -> None:
    with pytest.raises(client.ApiException) as refused:
        # The session's operator may write in between: a stale read is read again.
        write_status_retrying(api, namespace, llmd, lambda _: {"phase": "NoSuchPhase"})
    assert refused.value.status == 422
    assert "phase" in str(refused.value.body)


def test_both_paths_write_as_one_field_manager(api: client.ApiClient, namespace: str, llmd: str) -> None:
    _write(api, namespace, llmd, MARK)
    objects = client.CustomObjectsApi(api)
    for _ in range(20):  # the operator (when this session runs one) may write in between
        current = get_llmdeployment(api, namespace, llmd)
        meta = {
            "name": llmd,
            "namespace": namespace,
            "resourceVersion": current["metadata"]["resourceVersion"],
        }
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "LLMDeployment",
            "metadata": meta,
            "status": {**MARK, "candidate": "kubernetes-client-mark"},
        }
        try:
            objects.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, llmd, body)
            break
        except client.ApiException as error:
            if error.status != 409:
                raise
    else:
        raise AssertionError("20 status writes in a row through the kubernetes client were stale")
    _write(api, namespace, llmd, MARK)
    managers = {
        entry["manager"]
        for entry in get_llmdeployment(api, namespace, llmd)["metadata"]["managedFields"]
        if entry.get("subresource") == "status"
    }
    assert len(managers) == 1, managers


def test_a_connection_the_server_dropped_is_replaced(
    api: client.ApiClient, namespace: str, llmd: str
) -> None:
    lean = lean_client_for(api)
    assert lean is not None
    _write(api, namespace, llmd, MARK)  # this thread now keeps a connection
    kept = lean._local.connection
    assert kept.sock is not None
    kept.sock.shutdown(socket.SHUT_RDWR)  # as an apiserver closing an idle connection does
    written = _write(api, namespace, llmd, {**MARK, "candidate": "after-the-drop"})
    assert written["status"]["candidate"] == "after-the-drop"
    assert lean._local.connection is not kept
