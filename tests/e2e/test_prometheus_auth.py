"""Prometheus credentials come from a Secret, not the URL: against a real Prometheus that requires
basic auth (`--web.config.file` with basic_auth_users), a rollout reads its metrics with the Secret
and is promoted; without credentials, with a wrong password or with a missing Secret, its
MetricsAvailable=False says which and names the Secret, and the password is nowhere: not in status,
Events or the operator's log."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.cluster import Kube, wait_for
from tests.e2e.harness.prometheus import PrometheusServer
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.scenario import INTERVAL_SECONDS, NAME, llmdeployment, start_rollout

pytestmark = pytest.mark.usefixtures("gateway_api")

DECISION_TIMEOUT = 6 * INTERVAL_SECONDS + 10
USER = "llmrollout-reader"
PASSWORD = "e2e-reader-password"
WRONG_PASSWORD = "e2e-wrong-password"
# bcrypt of PASSWORD at cost 4 (Prometheus checks it on every request; a higher cost only slows the
# test). Made with: python3 -c "import crypt; print(crypt.crypt(PASSWORD, crypt.mksalt(
# crypt.METHOD_BLOWFISH, rounds=16)))"
PASSWORD_BCRYPT = "$2b$04$pzCkya475D0BLbmJAgumIO.ieq/TNpn8v9Ru.MopTm0Z6ibsm0xBu"
BASIC_AUTH = {"basicAuthSecretRef": {"name": "prom-auth"}}


@pytest.fixture
def guarded(prometheus: PrometheusServer, tmp_path: Path) -> Iterator[PrometheusServer]:
    """A second real Prometheus, behind basic auth, scraping the session Prometheus's targets."""
    server = PrometheusServer(
        tmp_path / "guarded",
        scrape_interval=prometheus.scrape_interval,
        targets_dir=prometheus.targets_dir,
        basic_auth=(USER, PASSWORD, PASSWORD_BCRYPT),
    )
    server.start()
    yield server
    server.stop()


def create_secret(kube: Kube, namespace: str, password: str) -> None:
    created = kube.kubectl(
        *("create", "secret", "generic", "prom-auth", "-n", namespace),
        *(f"--from-literal=username={USER}", f"--from-literal=password={password}"),
        check=False,
    )
    assert created.returncode == 0, created.stderr


def metrics_condition(kube: Kube, namespace: str) -> dict[str, Any] | None:
    status = kube.get("llmd", NAME, namespace).get("status", {})
    found = next((c for c in status.get("conditions", []) if c["type"] == "MetricsAvailable"), None)
    return found if found and found["status"] == "False" else None


def test_credentials_come_from_a_secret_and_are_never_shown(
    rollout_env: dict[str, Any], guarded: PrometheusServer, operator: OperatorProcess, report: list[str]
) -> None:
    kube: Kube = rollout_env["kube"]
    namespace: str = rollout_env["namespace"]
    refused = httpx.get(f"{guarded.address}/api/v1/query", params={"query": "up"}, timeout=10)
    assert refused.status_code == 401, "the guarded Prometheus answers without credentials"

    # Three LLMDeployments that cannot read, each in its own namespace, beside one that can.
    cases = {
        "noauth": (None, None, "refused the query (HTTP 401 Unauthorized) without credentials"),
        "wrong": (
            WRONG_PASSWORD,
            BASIC_AUTH,
            "refused the basic auth from Secret {ns}/prom-auth (HTTP 401 Unauthorized)",
        ),
        "missing": (
            None,
            BASIC_AUTH,
            "spec.metrics.prometheus.auth: Secret prom-auth not found in namespace {ns}",
        ),
    }
    stalled = {case: f"{namespace[:50]}-{case}" for case in cases}
    try:
        for case, (password, auth, _) in cases.items():
            kube.kubectl("create", "namespace", stalled[case])
            if password is not None:
                create_secret(kube, stalled[case], password)
            manifest = llmdeployment(stalled[case], guarded.address, auth=auth)
            manifest["spec"]["analysis"]["inconclusiveLimit"] = 1000
            assert kube.apply(manifest, stalled[case]).returncode == 0
        create_secret(kube, namespace, PASSWORD)
        started = time.monotonic()
        rollout = start_rollout(**{**rollout_env, "prometheus": guarded}, auth=BASIC_AUTH)

        for case, (_, _, said) in cases.items():
            condition = wait_for(
                lambda case=case: metrics_condition(kube, stalled[case]),
                6 * INTERVAL_SECONDS + 30,
                f"MetricsAvailable=False ({case})",
            )
            assert said.format(ns=stalled[case]) in condition["message"], condition

        status = rollout.wait_phase("Promoted", 5 * DECISION_TIMEOUT)
        assert status["stable"] == "v2"
        report.append(
            f"a rollout on a Prometheus behind basic auth promoted in {time.monotonic() - started:.1f}s"
        )

        # The credentials are nowhere that more people read than the Secret.
        secrets = [PASSWORD, WRONG_PASSWORD]
        secrets += [base64.b64encode(f"{USER}:{p}".encode()).decode() for p in (PASSWORD, WRONG_PASSWORD)]
        for where in [namespace, *stalled.values()]:
            shown = json.dumps(kube.get("llmd", NAME, where)) + json.dumps(
                rollout.events() if where == namespace else []
            )
            shown += kube.kubectl("get", "events", "-n", where, "-o", "json").stdout
            assert not [s for s in secrets if s in shown], where
        assert not [s for s in secrets if s in operator.log()]
    finally:
        for where in stalled.values():
            kube.kubectl("delete", "namespace", where, "--wait=false", check=False)
