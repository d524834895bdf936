"""The Helm chart lints, and what it renders is accepted by the real apiserver."""

from __future__ import annotations

import subprocess

from tests.e2e.cluster import REPO, Kube, built_helm

CHART = str(REPO / "charts/llmrollout")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(built_helm()), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def test_chart_lints() -> None:
    assert "1 chart(s) linted, 0 chart(s) failed" in helm("lint", CHART).stdout


def test_chart_renders_objects_the_apiserver_accepts(kube: Kube, namespace: str) -> None:
    # A watched namespace gets its own Role, so it must exist for the server-side dry run.
    for values in ([], ["--set", f"watchNamespaces={{{namespace}}}"]):
        rendered = helm("template", "llmrollout", CHART, "--namespace", namespace, *values).stdout
        result = kube.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=rendered)
        for kind in ("serviceaccount", "clusterrole", "clusterrolebinding", "deployment"):
            assert f"{kind}" in result.stdout, result.stdout
        if values:
            assert f"--namespace={namespace}" in rendered and "--all-namespaces" not in rendered
        else:
            assert "--all-namespaces" in rendered
