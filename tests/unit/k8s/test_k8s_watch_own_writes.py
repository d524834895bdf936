import json

import pytest

from llmrollout.k8s.watch import _own_version

OURS = {("41", "u"), ("57", "u")}


def _event(kind: str, version: str, labels: dict[str, str] | None = None, uid: str = "u") -> bytes:
    """As the apiserver writes it: the event's type first, the object's keys sorted, compact."""
    meta = {"labels": labels or {}, "name": "chat", "namespace": "a", "resourceVersion": version, "uid": uid}
    obj = {"apiVersion": "llmrollout.io/v1alpha1", "kind": "LLMDeployment", "metadata": meta}
    compact = json.dumps(obj, separators=(",", ":"), sort_keys=True)
    return f'{{"type":"{kind}","object":{compact}}}'.encode()


@pytest.mark.parametrize(
    ("line", "skipped"),
    [
        (_event("MODIFIED", "41"), "41"),
        (_event("MODIFIED", "42"), None),  # someone else's write
        (_event("ADDED", "57"), None),  # only MODIFIED events can be our status writes
        (_event("DELETED", "57"), None),
        (_event("MODIFIED", "43", {"resourceVersion": "41"}), None),  # a label named so is not taken
        (_event("MODIFIED", "41", uid="other"), None),  # another object's version (it cannot be)
        (b'{"type":"MODIFIED","object":{}}', None),
        (b'{"type":"MODIFIED","object":{"metadata":{"resourceVersion":"41', None),  # cut short
    ],
)
def test_only_our_own_writes_are_skipped(line: bytes, skipped: str | None) -> None:
    assert _own_version(line, lambda version, uid: (version, uid) in OURS) == skipped
