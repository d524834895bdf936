"""The two ways the operator learns about LLMDeployments, each on the real apiserver: its own watch
(named namespaces, every namespace: the session's operator uses it in every other test) and Kopf's,
which serves namespace patterns and the timer scheduler. Either way an object is initialised and its
Event says so, posted by the operator as component `llmrollout`.

The session's operator is stopped for this module, so that only the operator under test acts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Kube, wait_for
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.test_sharding import idle_llmdeployment

NAME = "support-bot"


def _initialized_events(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    events = json.loads(kube.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    return [
        e
        for e in events
        if e.get("reason") == "Initialized" and (e.get("involvedObject") or {}).get("name") == NAME
    ]


@pytest.mark.parametrize(
    ("how", "args"),
    [
        ("own watch, named namespace", ["--namespace", "{namespace}"]),
        ("Kopf's watch, a namespace pattern", ["--namespace", "{namespace}*"]),
        ("Kopf's watch, the timer scheduler", ["--namespace", "{namespace}", "--scheduler", "timer"]),
    ],
)
def test_an_object_is_initialised_and_its_event_posted(
    kube: Kube, namespace: str, no_operator: None, tmp_path: Path, how: str, args: list[str]
) -> None:
    process = OperatorProcess(
        kube.kubeconfig,
        tmp_path / "operator.log",
        extra_args=[a.format(namespace=namespace) for a in args],
        all_namespaces=False,
    )
    process.start()
    try:
        kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(idle_llmdeployment(NAME)))
        [event] = wait_for(lambda: _initialized_events(kube, namespace), 30, f"the Initialized Event ({how})")
        assert event["reportingComponent"] == "llmrollout" and event["source"]["component"] == "llmrollout"
        assert (kube.get("llmd", NAME, namespace).get("status") or {}).get("phase"), "no status written"
    finally:
        process.stop()
    log = process.log()
    kopf_watched = "Starting the watch-stream for llmdeployments" in log
    own_watched = f"watching llmdeployments in {namespace}" in log
    assert (kopf_watched, own_watched) == (("Kopf" in how), ("Kopf" not in how)), log[-3000:]
