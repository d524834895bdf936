from typing import Any

import pytest

from llmrollout.k8s.events import EVENT_MESSAGE_BYTES, NAME_PREFIX, event_body, event_message, involved_object

OBJECT: dict[str, Any] = {
    "apiVersion": "llmrollout.io/v1alpha1",
    "kind": "LLMDeployment",
    "metadata": {"namespace": "team-a", "name": "chat", "uid": "u-1", "resourceVersion": "7"},
    "spec": {},
}


def test_event_messages_fit_the_apiservers_byte_limit() -> None:
    long = "ttft p95 0.31s … " * 200
    cut = event_message(long)
    assert len(cut.encode()) <= EVENT_MESSAGE_BYTES < 1024
    assert cut.startswith("ttft p95") and "[...]" in cut
    assert event_message("short") == "short"


def test_the_involved_object_names_the_object_by_kind_namespace_name_and_uid() -> None:
    assert involved_object(OBJECT) == {
        "apiVersion": "llmrollout.io/v1alpha1",
        "kind": "LLMDeployment",
        "namespace": "team-a",
        "name": "chat",
        "uid": "u-1",
    }


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("type", "Warning"),
        ("reason", "RolledBack"),
        ("action", "RolledBack"),
        ("reportingComponent", "llmrollout"),
        ("reportingInstance", "pod-1-shard-0"),
        ("source", {"component": "llmrollout"}),
        ("metadata", {"namespace": "team-a", "generateName": NAME_PREFIX}),
        ("count", 1),
    ],
)
def test_an_event_body_carries(field: str, expected: Any) -> None:
    body = event_body(involved_object(OBJECT), "Warning", "RolledBack", "x", "llmrollout", "pod-1-shard-0")
    assert body[field] == expected


def test_an_event_body_cuts_its_message_and_stamps_one_time() -> None:
    body = event_body(involved_object(OBJECT), "Normal", "Promoted", "é" * 2000, "llmrollout", "i")
    assert len(body["message"].encode()) <= EVENT_MESSAGE_BYTES
    assert body["firstTimestamp"] == body["lastTimestamp"] == body["eventTime"]
    assert body["involvedObject"]["uid"] == "u-1"
