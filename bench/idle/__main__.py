"""`python -m bench.idle --n 300 [--seconds 60] [--scheduler timer,heap]`: operator CPU for idle objects.

On the local kwok cluster (real kube-apiserver and etcd), N idle LLMDeployments (no candidate, no
fallbacks, router `none`) are created once; then one `llmrollout run` process per scheduler serves
them in turn, and its CPU seconds over the same measuring time are read from /proc. The ratio of the
two, taken in the same run on the same machine, is the result; absolute numbers vary with the load.
The timer runs first: Kopf adds a finalizer for its timers, which the scheduler's run removes, so
the objects can be deleted at the end while it still runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from llmrollout.api.crd import render as render_crd
from tests.e2e.cluster import REPO, Kube, built_kubectl, cache_dir, wait_for

GROUP, VERSION, PLURAL = "llmrollout.io", "v1alpha1", "llmdeployments"
NAMESPACE = "bench-idle"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def idle_llmdeployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMDeployment",
        "metadata": {"name": name},
        "spec": {
            "variants": [
                {"name": v, "model": f"model-{v}", "backendRef": {"name": f"bench-{v}", "port": 8000}}
                for v in ("v1", "v2")
            ],
            "stable": "v1",
            "traffic": {"router": "none"},
            "strategy": {"steps": [50, 100], "interval": "15s"},
            # Never asked: an idle object reads nothing.
            "metrics": {"prometheus": {"address": "http://127.0.0.1:9"}, "preset": "openTelemetryGenAI"},
            "slos": {"errorRate": {"max": 0.05}},
        },
    }


def cpu_seconds(stat: str, ticks: int = CLOCK_TICKS) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds (the command may hold spaces and parens)."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / ticks


@dataclass(frozen=True)
class Result:
    scheduler: str
    n: int
    seconds: float
    cpu_seconds: float

    @property
    def per_minute(self) -> float:
        return self.cpu_seconds / self.seconds * 60 if self.seconds > 0 else 0.0


def report(results: Sequence[Result]) -> str:
    """A markdown table, and the timer's CPU as a multiple of the scheduler's."""
    lines = [
        "| scheduler | idle LLMDeployments | measured | operator CPU s/min | cores |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.scheduler} | {r.n} | {r.seconds:.0f} s | {r.per_minute:.2f} | {r.per_minute / 60:.4f} |"
        )
    by = {r.scheduler: r for r in results}
    if "timer" in by and "heap" in by and by["heap"].per_minute > 0:
        lines.append("")
        lines.append(f"timer / heap CPU: {by['timer'].per_minute / by['heap'].per_minute:.1f}x")
    return "\n".join(lines)


@contextlib.contextmanager
def operator(kube: Kube, scheduler: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig, "PYTHONUNBUFFERED": "1"}
    env.pop("LLMROLLOUT_TICK_SECONDS", None)  # the production tick for the timer
    process = subprocess.Popen(
        [sys.executable, "-m", "llmrollout.cli", "run", "-n", NAMESPACE, "--scheduler", scheduler],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: (
                "Initial authentication has finished" in log.read_text(errors="replace")
                or process.poll() is not None
            ),
            60,
            "operator start",
        )
        if process.poll() is not None:
            raise RuntimeError(f"the operator exited at start; see {log}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def cluster(name: str) -> Kube:
    env = {**os.environ, "CLUSTER_NAME": name}
    env.pop("KUBECONFIG", None)
    subprocess.run(["bash", str(REPO / "hack/cluster-up.sh")], env=env, check=True, timeout=1800)
    kube = Kube(str(cache_dir() / "clusters" / name / "kubeconfig"), str(built_kubectl()))
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=render_crd())
    kube.wait_established()
    return kube


def phases(objects: client.CustomObjectsApi) -> list[str]:
    listed = objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
    return [(item.get("status") or {}).get("phase", "") for item in listed["items"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="idle LLMDeployments (default 300)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring time per scheduler")
    parser.add_argument("--scheduler", default="timer,heap", help="comma-separated: timer, heap")
    parser.add_argument("--cluster", default=os.environ.get("LLMROLLOUT_E2E_CLUSTER", "llmrollout-bench"))
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    schedulers = [s.strip() for s in args.scheduler.split(",") if s.strip()]
    if args.n < 1 or not schedulers or any(s not in ("timer", "heap") for s in schedulers):
        parser.error("--n must be >= 1 and --scheduler a list of timer, heap")
    kube = cluster(args.cluster)
    api = kube.api_client()
    objects = client.CustomObjectsApi(api)
    kube.kubectl("create", "namespace", NAMESPACE, check=False)
    core = client.CoreV1Api(api)
    for v in ("v1", "v2"):
        # The backends' Services exist, as in a real cluster: a missing one is retried, not idle.
        service = {"metadata": {"name": f"bench-{v}"}, "spec": {"ports": [{"port": 8000}]}}
        with contextlib.suppress(client.ApiException):
            core.create_namespaced_service(NAMESPACE, service)
    names = [f"idle-{i:04d}" for i in range(args.n)]

    def create(name: str) -> None:
        with contextlib.suppress(client.ApiException):  # left over from an interrupted run
            objects.create_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, idle_llmdeployment(name)
            )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, names))
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-idle-{os.getpid()}"
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for index, scheduler in enumerate(schedulers):
            with operator(kube, scheduler, logs / f"operator-{scheduler}.log") as process:
                wait_for(
                    lambda: phases(objects).count("Idle") >= args.n, 900, "every object Idle", interval=3
                )
                time.sleep(20)  # the initial listing's reconciles and Kopf's own settling are not idle cost
                stat = Path(f"/proc/{process.pid}/stat")
                before, started = cpu_seconds(stat.read_text()), time.monotonic()
                time.sleep(args.seconds)
                used, took = cpu_seconds(stat.read_text()) - before, time.monotonic() - started
                results.append(Result(scheduler, args.n, took, used))
                print(f"{scheduler}: {used:.2f} CPU s in {took:.0f} s", flush=True)
                if index == len(schedulers) - 1:
                    # Deleted while an operator runs: a finalizer Kopf's timer added is removed.
                    objects.delete_collection_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
                    wait_for(lambda: not phases(objects), 600, "the objects deleted", interval=2)
    finally:
        api.close()
    table = report(results)
    print(table)
    if args.out is not None:
        args.out.write_text(f"# bench/idle\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
