"""The chart runs one acting replica (leader election on a Lease), protects more than one with a
PodDisruptionBudget and anti-affinity, and grants namespaced Roles when given watchNamespaces. What
it renders is accepted by the real apiserver."""

from __future__ import annotations

from typing import Any

import yaml

from tests.e2e.cluster import Kube
from tests.e2e.test_chart import CHART, helm


def render(namespace: str, *values: str) -> list[dict[str, Any]]:
    rendered = helm("template", "llmrollout", CHART, "--namespace", namespace, *values).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def kinds(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((d["kind"], d["metadata"].get("namespace", "")) for d in docs)


def args_of(docs: list[dict[str, Any]]) -> list[str]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_leader_election_is_on_by_default(kube: Kube, namespace: str) -> None:
    docs = render(namespace)
    args = args_of(docs)
    assert "--standalone" not in args
    assert "--leader-election" in args and f"--lease-namespace={namespace}" in args
    assert "--metrics-address=0.0.0.0:8081" in args and "--log-format=json" in args
    assert "--workers=8" in args
    assert "--workers=32" in args_of(render(namespace, "--set", "workers=32"))
    lease_role = next(
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("leader-election")
    )
    assert lease_role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    assert not any(d["kind"] == "PodDisruptionBudget" for d in docs)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    applied = kube.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs)
    )
    assert applied.returncode == 0, applied.stderr


def test_two_replicas_get_a_budget_and_anti_affinity(kube: Kube, namespace: str) -> None:
    docs = render(namespace, "--set", "replicas=2")
    budget = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    affinity = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"][
        "topologyKey"
    ] == ("kubernetes.io/hostname")
    applied = kube.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs)
    )
    assert applied.returncode == 0, applied.stderr


def test_watch_namespaces_get_roles_not_cluster_wide_access(namespace: str) -> None:
    docs = render(namespace, "--set", "watchNamespaces={team-a,team-b}")
    roles = [d for d in docs if d["kind"] == "Role" and not d["metadata"]["name"].endswith("leader-election")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    # Cluster-wide only what Kopf needs to find namespaces and CRDs; nothing on LLMDeployments.
    assert {g for rule in cluster_role["rules"] for g in rule["apiGroups"]} == {"", "apiextensions.k8s.io"}
    assert {r for rule in cluster_role["rules"] for r in rule["resources"]} == {
        "namespaces",
        "customresourcedefinitions",
    }
    assert sorted(b["metadata"]["namespace"] for b in docs if b["kind"] == "RoleBinding") == sorted(
        ["team-a", "team-b", namespace]
    )


def test_egress_policy_and_prometheus_allowlist(kube: Kube, namespace: str) -> None:
    docs = render(
        namespace,
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "prometheusAllowlist={prometheus.monitoring}",
    )
    assert "--prometheus-allow=prometheus.monitoring" in args_of(docs)
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Egress"]
    ports = sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"])
    assert ports == [53, 53, 443, 6443, 9090]
    applied = kube.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs)
    )
    assert applied.returncode == 0, applied.stderr
    assert not any(d["kind"] == "NetworkPolicy" for d in render(namespace))
