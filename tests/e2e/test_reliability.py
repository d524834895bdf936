"""Never stuck, never twice, never fooled: the operator on the real cluster when its status writes
are refused, and when it dies between the writes of one decision.

These tests run their own operator processes (with a liveness endpoint or a fault hook), so the
session's operator is stopped meanwhile: two operators acting on one object is a different test.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import REPO, Kube, wait_for
from tests.e2e.operator_process import OperatorProcess
from tests.e2e.scenario import INTERVAL_SECONDS, NAME, llmdeployment, start_rollout
from tests.e2e.test_cli import llmrollout

pytestmark = pytest.mark.usefixtures("gateway_api")

DECISION_TIMEOUT = 6 * INTERVAL_SECONDS + 10
REFUSAL_SECONDS = 90.0
FAULT_ENV = "LLMROLLOUT_FAULT_EXIT_AFTER_ROUTE_WRITE"
TERM_ENV = "LLMROLLOUT_FAULT_TERM_AFTER_ROUTE_WRITE"


@pytest.fixture
def own_operator(operator: OperatorProcess, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    """Stops the session's operator for this test; the test starts its own (listed here so they
    are stopped at the end, whatever happens), and the session's comes back afterwards."""
    operator.stop()
    started: list[OperatorProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()
        operator.start()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def probe(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            code: int = answer.status
            return code
    except urllib.error.HTTPError as error:
        return error.code


def refuse_status_writes(kube: Kube, namespace: str) -> str:
    """A ValidatingAdmissionPolicy that denies every update of llmdeployments/status in `namespace`."""
    name = f"refuse-status-{namespace}"[:63]
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["llmrollout.io"],
                        "apiVersions": ["*"],
                        "operations": ["UPDATE"],
                        "resources": ["llmdeployments/status"],
                    }
                ]
            },
            "validations": [{"expression": "false", "message": "status writes refused by the test"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    applied = kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([policy, binding]), check=False)
    assert applied.returncode == 0, applied.stderr

    def refused() -> bool:
        attempt = kube.kubectl(
            *("patch", "llmd", NAME, "-n", namespace, "--subresource=status", "--type=merge"),
            *("-p", '{"status": {}}', "--dry-run=server"),
            check=False,
        )
        return "status writes refused by the test" in attempt.stderr

    wait_for(refused, 30, "the admission policy to take effect", interval=0.5)
    return name


def allow_status_writes(kube: Kube, name: str) -> None:
    kube.kubectl("delete", "validatingadmissionpolicybinding", name, "--ignore-not-found")
    kube.kubectl("delete", "validatingadmissionpolicy", name, "--ignore-not-found")


@pytest.mark.slow
def test_refused_status_writes_hold_the_rollout_then_it_is_promoted(
    rollout_env: dict[str, Any], own_operator: list[OperatorProcess], tmp_path: Path
) -> None:
    kube, namespace = rollout_env["kube"], rollout_env["namespace"]
    url = f"http://127.0.0.1:{free_port()}/healthz"
    process = OperatorProcess(kube.kubeconfig, tmp_path / "operator.log", extra_args=[f"--liveness={url}"])
    own_operator.append(process)
    process.start()
    rollout = start_rollout(**rollout_env)
    rollout.watch_route()
    # The first step waits for every series to exist first: generous, as a loaded machine is slow.
    rollout.wait_step(20, 3 * DECISION_TIMEOUT)
    assert wait_for(lambda: probe(url) == 200, 30, "a healthy probe before the refusal")

    policy = refuse_status_writes(kube, namespace)
    try:
        refused_at = time.monotonic()
        held = rollout.status()
        share = rollout.candidate_share()
        wait_for(lambda: probe(url) == 500, 3 * INTERVAL_SECONDS + 30, "the probe to report unhealthy")
        while time.monotonic() - refused_at < REFUSAL_SECONDS:
            # No decision is acted on before it is recorded: the route and status stay as they were.
            assert rollout.candidate_share() == share, "the route moved while status writes were refused"
            assert rollout.status()["step"] == held["step"]
            assert process.process is not None and process.process.poll() is None, process.tail()
            time.sleep(2)
        assert probe(url) == 500
        failed = rollout.event_messages("ReconcileFailed")
        assert failed and "status writes refused by the test" in failed[0], failed
    finally:
        allow_status_writes(kube, policy)

    status = rollout.wait_phase("Promoted", 5 * DECISION_TIMEOUT)
    rollout.stop_watching()
    assert status["stable"] == "v2" and rollout.route_weights() == {"bot-v1": 0, "bot-v2": 100}
    assert [w for w in rollout.seen_weights if w] == [20, 50, 100], rollout.seen_weights
    assert len(rollout.event_messages("StepAdvanced")) == 1, rollout.event_messages("StepAdvanced")
    wait_for(lambda: probe(url) == 200, 30, "the probe healthy again")


@pytest.mark.parametrize("fault", ["killed", "killed-status-refused-first", "sigterm"])
def test_an_operator_dying_after_the_abort_route_write_ends_rolled_back(
    rollout_env: dict[str, Any], own_operator: list[OperatorProcess], tmp_path: Path, fault: str
) -> None:
    """Killed right after the route write (os._exit: nothing after it runs), or sent SIGTERM there
    (a rolling update: the shutdown may let the tick finish or abandon it)."""
    kube, namespace = rollout_env["kube"], rollout_env["namespace"]
    refused_first = fault == "killed-status-refused-first"
    env = {TERM_ENV if fault == "sigterm" else FAULT_ENV: "abort"}
    dying = OperatorProcess(kube.kubeconfig, tmp_path / "dying.log", extra_env=env)
    own_operator.append(dying)
    dying.start()
    rollout = start_rollout(**rollout_env, min_requests=10**6)  # stays at the first step
    rollout.wait_step(20, DECISION_TIMEOUT)
    wait_for(lambda: rollout.candidate_share() == 20, 10, "the first step on the route")

    policy = refuse_status_writes(kube, namespace) if refused_first else None
    assert llmrollout(kube, "abort", NAME, "-n", namespace).returncode == 0
    if policy is not None:
        # The abort cannot be recorded, so it is not acted on: the route keeps the candidate's share.
        time.sleep(3 * INTERVAL_SECONDS)
        assert rollout.candidate_share() == 20
        assert rollout.status()["phase"] == "Progressing"
        allow_status_writes(kube, policy)
    assert dying.process is not None
    process = dying.process
    # A tuple, since exit code 0 is falsy.
    (code,) = wait_for(lambda: (c := process.poll()) is not None and (c,), 60, "the fault hook's exit")
    assert code == (0 if fault == "sigterm" else 86), dying.tail()
    # The decision is in status and the route carries it. Killed, the process confirmed nothing
    # after the route write; stopped, it may have finished the tick.
    status = rollout.status()
    assert (status["phase"], status["weights"]) == ("RolledBack", {"v1": 100, "v2": 0})
    if fault != "sigterm":
        assert status.get("appliedWeights") == {"v1": 80, "v2": 20}
    assert rollout.route_weights() == {"bot-v1": 100, "bot-v2": 0}

    successor = OperatorProcess(kube.kubeconfig, tmp_path / "successor.log")
    own_operator.append(successor)
    successor.start()
    wait_for(
        lambda: rollout.status().get("appliedWeights") == {"v1": 100, "v2": 0},
        DECISION_TIMEOUT,
        "the successor confirming the weights",
    )
    annotations = kube.get("llmd", NAME, namespace)["metadata"].get("annotations", {})
    assert "llmrollout.io/action" not in annotations
    deadline = time.monotonic() + 3 * INTERVAL_SECONDS
    while time.monotonic() < deadline:
        assert rollout.route_weights() == {"bot-v1": 100, "bot-v2": 0}
        assert rollout.status()["phase"] == "RolledBack"
        time.sleep(0.5)
    assert rollout.event_messages("WeightsDrifted") == []
    # Events are posted asynchronously, so the dying process may have lost its one; never two.
    assert len(rollout.event_messages("RolledBack")) <= 1, rollout.event_messages("RolledBack")
    history = [h["reason"] for h in rollout.status()["history"]]
    assert history.count("RolledBack") == 1, history


LEASE_SECONDS = 6


def lease_holder(kube: Kube, namespace: str, name: str) -> str | None:
    found = kube.kubectl("get", "lease", name, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return None
    holder: str | None = yaml.safe_load(found.stdout)["spec"].get("holderIdentity")
    return holder


def test_two_replicas_one_leader_and_a_takeover(
    rollout_env: dict[str, Any], own_operator: list[OperatorProcess], tmp_path: Path, report: list[str]
) -> None:
    kube, namespace = rollout_env["kube"], rollout_env["namespace"]
    lease = "llmrollout-e2e"
    election = [
        *("--leader-election", f"--lease-namespace={namespace}", f"--lease-name={lease}"),
        f"--lease-duration={LEASE_SECONDS}",
    ]
    replicas = [OperatorProcess(kube.kubeconfig, tmp_path / f"replica-{i}.log", election) for i in (1, 2)]
    for replica in replicas:
        own_operator.append(replica)
        replica.start()
    identities = {
        f"{socket.gethostname()}-{replica.process.pid}": replica for replica in replicas if replica.process
    }
    holder = wait_for(lambda: lease_holder(kube, namespace, lease), 30, "a Lease holder")
    assert holder in identities, (holder, list(identities))

    rollout = start_rollout(**rollout_env, steps=[10, 20, 40, 60, 100])
    rollout.watch_route()
    rollout.wait_step(20, 2 * DECISION_TIMEOUT)
    assert lease_holder(kube, namespace, lease) == holder, "leadership changed with both replicas alive"

    leader = identities[holder]
    assert leader.process is not None
    leader.process.kill()
    killed_at = time.monotonic()
    new_holder = wait_for(
        lambda: (h := lease_holder(kube, namespace, lease)) not in (None, holder) and h,
        3 * LEASE_SECONDS,
        "the standby taking the Lease over",
        interval=0.2,
    )
    took = time.monotonic() - killed_at
    report.append(f"leader SIGKILLed -> standby holds the Lease in {took:.1f}s (lease {LEASE_SECONDS}s)")
    assert took <= LEASE_SECONDS * 4 / 3 + 2, took
    assert new_holder in identities

    status = rollout.wait_phase("Promoted", 6 * DECISION_TIMEOUT)
    rollout.stop_watching()
    assert status["stable"] == "v2"
    # The route followed the steps exactly, and each decision was said once.
    assert [w for w in rollout.seen_weights if w] == [10, 20, 40, 60, 100], rollout.seen_weights
    advanced = rollout.event_messages("StepAdvanced")
    assert len(advanced) == 3, advanced
    assert len(rollout.event_messages("RolloutStarted")) == 1
    assert len(rollout.event_messages("Promoted")) == 1


def test_the_operators_own_metrics_are_scraped_by_prometheus(
    kube: Kube, namespace: str, prometheus: Any, own_operator: list[OperatorProcess], tmp_path: Path
) -> None:
    port = free_port()
    process = OperatorProcess(
        kube.kubeconfig,
        tmp_path / "operator.log",
        extra_args=[f"--metrics-address=127.0.0.1:{port}", "--log-format=json"],
        verbose=False,
    )
    own_operator.append(process)
    process.start()
    group = f"operator-{namespace}"
    prometheus.set_targets(group, [f"127.0.0.1:{port}"], {"job_name": group})
    try:
        prometheus.wait_for_targets({"job_name": group}, 1, timeout=30)
        kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples/basic.yaml"))
        reconciles = wait_for(
            lambda: prometheus.query_value(
                f'sum(llmrollout_reconciles_total{{job_name="{group}",result="success"}})'
            ),
            30,
            "a reconcile counted in Prometheus",
            interval=1.0,
        )
        assert reconciles >= 1
        initialized = wait_for(
            lambda: prometheus.query_value(
                f'llmrollout_decisions_total{{job_name="{group}",kind="Initialized"}}'
            ),
            30,
            "the Initialized decision counted",
            interval=1.0,
        )
        assert initialized >= 1
        assert prometheus.query_value(f'llmrollout_leader{{job_name="{group}"}}') == 1
    finally:
        prometheus.remove_targets(group)
    # JSON logs, quiet at INFO: decisions, not one line per timer run or HTTP request.
    lines = [line for line in process.log().splitlines() if line.startswith("{")]
    assert any('"Initialized' in line or "Initialized:" in line for line in lines), process.tail()
    assert not any("succeeded" in line and "tick" in line for line in lines), process.tail()


class _Hostile:
    """A Prometheus stand-in that answers 200 and then misbehaves: `drip` sends one byte every few
    seconds and never finishes; `flood` sends 60 MB of JSON-looking bytes without a length."""

    def __init__(self, how: str, seconds_per_byte: float = 4.0, flood_bytes: int = 60 * 10**6) -> None:
        stopped = threading.Event()
        block = b" " * (64 * 1024)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()  # no Content-Length: the body ends when the connection does
                with contextlib.suppress(OSError):
                    if how == "flood":
                        self.wfile.write(b'{"status": "success", "data": {"result": ["')
                        for _ in range(flood_bytes // len(block)):
                            if stopped.is_set():
                                return
                            self.wfile.write(block)
                        return
                    while not stopped.is_set():
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        stopped.wait(seconds_per_byte)

            def log_message(self, *_: Any) -> None:
                return

        self.stopped = stopped
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def metrics_unavailable(kube: Kube, namespace: str) -> dict[str, Any] | None:
    """MetricsAvailable=False with the inconclusive count at the time, once it is set."""
    status = kube.get("llmd", NAME, namespace).get("status", {})
    found = next((c for c in status.get("conditions", []) if c["type"] == "MetricsAvailable"), None)
    if found is None or found["status"] != "False":
        return None
    return {**found, "inconclusiveChecks": status.get("inconclusiveChecks", 0)}


# Issue 11's bound. A normal operator sits near 120 MiB. A 60 MB answer held (or parsed) would be far
# over it, and so were the cut-off answers (up to 1 MiB per query, some 20 per window) that a batch's
# errors kept alive through their tracebacks: 272-325 MiB here until metrics/client.py and batch.py
# stopped that.
PEAK_RSS_LIMIT_MIB = 200


def test_hostile_prometheus_servers_stall_only_their_own_llmdeployments(
    rollout_env: dict[str, Any], own_operator: list[OperatorProcess], tmp_path: Path, report: list[str]
) -> None:
    """A dripping server and one sending 60 MB, beside the real Prometheus: each of their
    LLMDeployments says why within its first windows, the operator stays small, and a rollout on
    the real Prometheus is promoted meanwhile. A fresh operator, so that its peak RSS is this test's."""
    kube: Kube = rollout_env["kube"]
    process = OperatorProcess(kube.kubeconfig, tmp_path / "operator.log")
    own_operator.append(process)
    process.start()
    assert process.process is not None
    stubs = {"drip": _Hostile("drip"), "flood": _Hostile("flood")}
    # The drip is named by the reconcile's wait for the check's read, an interval but 10 s at least
    # ("did not answer within 10s (the window's deadline)"), counted from the first ask wherever the
    # scrape-aligned check window moves; the read's own 30 s bound ("did not answer every query of the
    # window within 30s") would say it too.
    causes = {"drip": "did not answer", "flood": "sent an answer larger than 1048576 bytes"}
    stalled = {how: f"{rollout_env['namespace'][:50]}-{how}" for how in stubs}
    try:
        for how, namespace in stalled.items():
            kube.kubectl("create", "namespace", namespace)
            manifest = llmdeployment(namespace, stubs[how].address)
            manifest["spec"]["analysis"]["inconclusiveLimit"] = 1000
            assert kube.apply(manifest, namespace).returncode == 0
        started, second = time.monotonic(), time.gmtime().tm_sec  # where in the minute: the check's window
        healthy = start_rollout(**rollout_env)

        for how, namespace in stalled.items():
            condition = wait_for(
                lambda namespace=namespace: metrics_unavailable(kube, namespace),
                6 * INTERVAL_SECONDS + 30,
                f"MetricsAvailable=False on the {how} stub",
            )
            assert causes[how] in condition["message"], condition
            assert f"127.0.0.1:{stubs[how].server.server_address[1]}" in condition["message"], condition
            # Said by the first or second window read, not after several: within 2 intervals.
            assert condition["inconclusiveChecks"] <= 2, condition
            report.append(
                f"{how} Prometheus -> MetricsAvailable=False after {time.monotonic() - started:.1f}s"
                f" (interval {INTERVAL_SECONDS:g}s, asked at :{second:02d})"
            )
        # The other LLMDeployment, on the real Prometheus, goes on as if nothing happened.
        status = healthy.wait_phase("Promoted", 5 * DECISION_TIMEOUT)
        assert status["stable"] == "v2"
        assert not any(
            c["type"] == "MetricsAvailable" and c["status"] == "False" for c in status.get("conditions", [])
        ), status["conditions"]
        report.append(
            f"beside them, a rollout on the real Prometheus promoted in {time.monotonic() - started:.1f}s"
        )
        assert process.process.poll() is None, process.tail()
        peak = peak_rss_mib(process.process.pid)
        report.append(f"operator peak RSS with a 60 MB answer and a drip: {peak:.0f} MiB")
        assert peak < PEAK_RSS_LIMIT_MIB, peak
    finally:
        for namespace in stalled.values():
            kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        for stub in stubs.values():
            stub.close()
