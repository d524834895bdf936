"""The operator adopts an LLMDeployment: status, printer columns, conditions and an Event."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.e2e.cluster import REPO, Kube, wait_for
from tests.e2e.operator_process import OperatorProcess


def status_of(kube: Kube, namespace: str, name: str = "support-bot") -> dict[str, Any]:
    status: dict[str, Any] = kube.get("llmd", name, namespace).get("status", {})
    return status


def test_operator_reports_status_columns_and_event(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples/basic.yaml"))

    status = wait_for(
        lambda: status_of(kube, namespace).get("phase") == "Idle" and status_of(kube, namespace),
        30,
        "phase Idle",
    )
    assert status["weights"] == {"v1": 100, "v2": 0, "hosted": 0}
    assert status["stable"] == "v1"
    assert (
        status["observedGeneration"] == kube.get("llmd", "support-bot", namespace)["metadata"]["generation"]
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Reconciled")
    # The example names Services and an HTTPRoute that this namespace lacks: said, retried, no crash.
    traffic = next(c for c in status["conditions"] if c["type"] == "TrafficRouted")
    assert (traffic["status"], traffic["reason"]) == ("False", "ServiceNotFound")
    assert "bot-v1" in traffic["message"]

    table = kube.kubectl("get", "llmd", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "STABLE", "CANDIDATE", "WEIGHT", "STEP", "AGE"]
    assert table[1].split()[:3] == ["support-bot", "Idle", "v1"]

    described = wait_for(
        lambda: (
            (out := kube.kubectl("describe", "llmd", "support-bot", "-n", namespace).stdout)
            and "Initialized" in out
            and out
        ),
        30,
        "the Initialized Event in kubectl describe",
    )
    assert "v1 serves 100%" in described
    assert "TrafficNotRouted" in described


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ('sum(rate(refusals_total{variant="{{variant}}"}[{{window}}]))', "{{window}}"),
        ("sum(rate(refusals_total{variant={{variant}}}[{{interval}}]))", "double-quoted string"),
    ],
)
def test_spec_the_schema_cannot_refuse_is_reported_not_crashed(
    kube: Kube, operator: OperatorProcess, namespace: str, query: str, complaint: str
) -> None:
    manifest = yaml.safe_load((REPO / "examples/basic.yaml").read_text())
    manifest["spec"]["slos"]["custom"] = [{"name": "refusals", "query": query, "max": 0.05}]
    assert kube.apply(manifest, namespace).returncode == 0

    def failed() -> dict[str, Any] | None:
        status = status_of(kube, namespace)
        return status if status.get("phase") == "Failed" else None

    status = wait_for(failed, 30, "phase Failed")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.slos.custom[0].query" in ready["message"] and complaint in ready["message"], ready

    manifest["spec"]["slos"]["custom"][0]["query"] = (
        'sum(rate(refusals_total{variant="{{variant}}"}[{{interval}}]))'
    )
    assert kube.apply(manifest, namespace).returncode == 0
    wait_for(lambda: status_of(kube, namespace).get("phase") == "Idle", 30, "phase Idle after the fix")
    assert operator.process is not None and operator.process.poll() is None, operator.tail()


def test_a_service_that_appears_or_goes_is_noticed(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    """Existence comes from the Services watch: a Service that appears is used, and one deleted after
    the watch saw it is reported missing again (never a stale "it exists")."""
    kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples/basic.yaml"))

    def traffic_reason() -> str | None:
        conditions = status_of(kube, namespace).get("conditions", [])
        return next((c["reason"] for c in conditions if c["type"] == "TrafficRouted"), None)

    wait_for(lambda: traffic_reason() == "ServiceNotFound", 30, "ServiceNotFound")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bot-v1"},
        "spec": {"selector": {"app": "bot-v1"}, "ports": [{"port": 8000}]},
    }
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(service))
    wait_for(lambda: traffic_reason() not in (None, "ServiceNotFound"), 20, "the Service noticed")
    kube.kubectl("delete", "service", "bot-v1", "-n", namespace)
    wait_for(lambda: traffic_reason() == "ServiceNotFound", 20, "the deleted Service noticed")
