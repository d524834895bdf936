"""`python -m bench.scale --n 100,300,1000 [--quick]`: operator cost against a simulated fleet.

On the local kwok cluster (real kube-apiserver and etcd) with the real Prometheus: one exporter
serves the series of every LLMDeployment (told apart by a label), Prometheus scrapes it every 15 s,
and one `llmrollout run` process serves N LLMDeployments (router `none`, look interval 15 s). For
each N it measures the idle fleet (no candidate), then the rolling fleet (a candidate set), and
writes bench/results/scale.md and scale.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, watch

from bench.scale.fleet import DEPLOYMENT_LABEL, VARIANT_LABEL, FleetExporter
from bench.scale.measure import Point, cpu_seconds, markdown, percentile, status_kib
from bench.scale.same import differences_note, read_both, summary, tally
from llmrollout.api.crd import render as render_crd
from tests.e2e.cluster import REPO, Kube, built_kubectl, cache_dir, wait_for
from tests.e2e.harness.prometheus import PrometheusServer, free_port

GROUP, VERSION, PLURAL = "llmrollout.io", "v1alpha1", "llmdeployments"
NAMESPACE = "bench-scale"
INTERVAL = 15.0
SCRAPE = 15.0
STEPS = list(range(5, 101, 5))  # 20 looks to promote: the fleet stays rolling while measured


def llmdeployment(name: str, prometheus: str, candidate: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "variants": [
            {"name": v, "model": f"model-{v}", "backendRef": {"name": f"bench-{v}", "port": 8000}}
            for v in ("v1", "v2")
        ],
        "stable": "v1",
        "traffic": {"router": "none"},
        "strategy": {"steps": STEPS, "interval": f"{INTERVAL:g}s", "minRequests": 10},
        "metrics": {
            "prometheus": {"address": prometheus, "scrapeInterval": f"{SCRAPE:g}s"},
            "preset": "openTelemetryGenAI",
            "variantLabel": VARIANT_LABEL,
            "labels": {DEPLOYMENT_LABEL: name},
        },
        "slos": {"errorRate": {"max": 0.05}, "ttft": {"p95": "800ms"}},
        "analysis": {"method": "threshold"},
    }
    if candidate:
        spec["candidate"] = "v2"
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMDeployment",
        "metadata": {"name": name},
        "spec": spec,
    }


@dataclasses.dataclass
class _Seen:
    phase: str | None
    window_end: str | None  # status.lastAnalysisAt as written
    analysed: datetime | None  # when a write carrying it arrived; None: before the watch opened


class WriteCounter:
    """Counts writes the API server accepted in the namespace: LLMDeployment MODIFIED watch events
    (status and annotation writes) and Events created or updated (kube-apiserver audit is off).
    It also keeps each LLMDeployment's phase and status.lastAnalysisAt from the watch, so the lags are
    sampled without listing the fleet every few seconds: how old the window analysed last is, how long
    ago its analysis was written, and how long after its window closed each analysis was written."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.count = 0
        self.delays: list[float] = []
        self.failures = 0
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listed = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch_llmd, daemon=True),
            threading.Thread(target=self._watch_events, daemon=True),
        ]

    def start(self) -> WriteCounter:
        for thread in self._threads:
            thread.start()
        if not self._listed.wait(120):
            raise RuntimeError("bench.scale: the LLMDeployments could not be listed in 120 s")
        return self

    def stop(self) -> None:
        self._stop.set()

    def _add(self) -> None:
        with self._lock:
            self.count += 1

    def _watch_llmd(self) -> None:
        objects = client.CustomObjectsApi(self.api)
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listed = objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
                    for item in listed["items"]:
                        self._note(item, arrived=False)
                    version = listed["metadata"]["resourceVersion"]
                    self._listed.set()
                # From the last version seen: every change, none twice, across the watch's restarts.
                stream = watch.Watch()
                for event in stream.stream(
                    objects.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    NAMESPACE,
                    PLURAL,
                    resource_version=version,
                    timeout_seconds=30,
                ):
                    if event["type"] == "MODIFIED":
                        self._add()
                        self._note(event["object"], arrived=True)
                    if self._stop.is_set():
                        return
                version = stream.resource_version or version
            except Exception as error:  # a broken watch is said, never counted as zero
                print(f"bench.scale: LLMDeployment watch failed: {error!r}", file=sys.stderr, flush=True)
                self.failures += 1
                version = None
                time.sleep(1.0)

    def _note(self, obj: dict[str, Any], arrived: bool) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        status = obj.get("status") or {}
        at = status.get("lastAnalysisAt")
        now = datetime.now(UTC)
        with self._lock:
            seen = self._seen.setdefault(name, _Seen(None, None, None))
            seen.phase = status.get("phase")
            if not at or seen.window_end == at:
                return
            known = seen.window_end is not None
            seen.window_end = at
            # A window end first seen in a list was written at some unknown time before it.
            seen.analysed = now if arrived else None
            if arrived and known:
                self.delays.append((now - parse_time(at)).total_seconds())

    def wait_written(self, timeout: float) -> bool:
        """Waits until a write of its analysis has arrived on the watch for every rolling LLMDeployment
        (True), or `timeout` seconds (False): until then, how long ago an object's analysis was
        written is not known, only how long ago its window closed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(s.analysed is not None for s in self._seen.values() if s.phase == "Progressing"):
                    return True
            time.sleep(0.5)
        return False

    def sample(self, now: datetime) -> tuple[list[float], list[float]]:
        """Over the rolling LLMDeployments: how old the window analysed last is, and how long ago its
        analysis was written (for a write from before the watch opened: since its window closed, an
        overstatement that lasts only until the next look)."""
        ages, since = [], []
        with self._lock:
            for seen in self._seen.values():
                if seen.phase != "Progressing" or seen.window_end is None:
                    continue
                end = parse_time(seen.window_end)
                ages.append((now - end).total_seconds())
                since.append((now - (seen.analysed or end)).total_seconds())
        return ages, since

    def _watch_events(self) -> None:
        core = client.CoreV1Api(self.api)
        while not self._stop.is_set():
            try:
                listed = core.list_namespaced_event(NAMESPACE, limit=1)
                version = listed.metadata.resource_version
                for event in watch.Watch().stream(
                    core.list_namespaced_event, NAMESPACE, resource_version=version, timeout_seconds=30
                ):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._add()
                    if self._stop.is_set():
                        return
            except Exception as error:  # a broken watch is said, never counted as zero
                print(f"bench.scale: Event watch failed: {error!r}", file=sys.stderr, flush=True)
                self.failures += 1
                time.sleep(1.0)


class Operator:
    def __init__(
        self, kubeconfig: str, source: Path, log: Path, batched: bool, extra_args: Sequence[str] = ()
    ) -> None:
        self.metrics_port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "PYTHONPATH": os.pathsep.join([str(source / "operator"), str(REPO)]),
            "PYTHONUNBUFFERED": "1",
            "LLMROLLOUT_BATCH_READS": "1" if batched else "0",
        }
        env.pop("LLMROLLOUT_TICK_SECONDS", None)  # the production tick
        self.log = log
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "llmrollout.cli", "run", "-n", NAMESPACE),
                *("--metrics-address", f"127.0.0.1:{self.metrics_port}"),
                *extra_args,
            ],
            cwd=source,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: (
                "Initial authentication has finished" in log.read_text(errors="replace")
                or self.process.poll() is not None
            ),
            60,
            "operator start",
        )
        if self.process.poll() is not None:
            raise RuntimeError(f"the operator exited at start; see {log}")

    def cpu(self) -> float:
        return cpu_seconds(Path(f"/proc/{self.process.pid}/stat").read_text())

    def peak_rss_mb(self) -> float:
        return status_kib(Path(f"/proc/{self.process.pid}/status").read_text(), "VmHWM") / 1024

    def decisions(self) -> int:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        return int(
            sum(float(m) for m in re.findall(r"^llmrollout_decisions_total\{[^}]*\} (\S+)$", text, re.M))
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def prometheus_queries(prometheus: PrometheusServer) -> float:
    text = httpx.get(f"{prometheus.address}/metrics", timeout=10).text
    found = re.findall(
        r'^prometheus_http_requests_total\{[^}]*handler="/api/v1/query"[^}]*\} (\S+)$', text, re.M
    )
    return sum(float(v) for v in found)


def list_status(objects: client.CustomObjectsApi) -> list[dict[str, Any]]:
    listed = objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
    return [item.get("status") or {} for item in listed["items"]]


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def measure(
    n: int,
    state: str,
    reads: str,
    seconds: float,
    operator: Operator,
    prometheus: PrometheusServer,
    api: client.ApiClient,
    notes: str,
) -> Point:
    writes = WriteCounter(api).start()
    time.sleep(2)  # the watches are open before the counting starts
    # Every rolling object's next analysis is seen written before the lags are sampled (a prompt
    # operator writes them all within an interval and a bit).
    if not writes.wait_written(2 * INTERVAL + 15):
        notes = f"{notes}; not every rolling LLMDeployment wrote an analysis within {2 * INTERVAL + 15:g} s"
        notes = notes.lstrip("; ")
    counted_before = writes.count
    cpu0, queries0, decisions0 = operator.cpu(), prometheus_queries(prometheus), operator.decisions()
    started = time.monotonic()
    ages: list[float] = []
    since: list[float] = []
    while time.monotonic() - started < seconds:
        sampled = writes.sample(datetime.now(UTC))
        ages += sampled[0]
        since += sampled[1]
        time.sleep(3.0)
    elapsed = time.monotonic() - started
    cpu = (operator.cpu() - cpu0) / elapsed
    queries = (prometheus_queries(prometheus) - queries0) / elapsed
    write_rate = (writes.count - counted_before) / elapsed
    writes.stop()
    if writes.failures:
        notes = f"{notes}; write-counting watch failed {writes.failures}x".lstrip("; ")
    point = Point(
        n=n,
        state=state,
        reads=reads,
        seconds=round(elapsed, 1),
        cpu_cores=round(cpu, 4),
        rss_mb=round(operator.peak_rss_mb(), 1),
        queries_per_s=round(queries, 2),
        writes_per_s=round(write_rate, 3),
        lag_p50_s=_round(percentile(ages, 50)),
        lag_p95_s=_round(percentile(ages, 95)),
        since_p50_s=_round(percentile(since, 50)),
        since_p95_s=_round(percentile(since, 95)),
        delay_p50_s=_round(percentile(writes.delays, 50)),
        delay_p95_s=_round(percentile(writes.delays, 95)),
        decisions=operator.decisions() - decisions0,
        look_interval_s=INTERVAL,
        notes=notes,
    )
    print(json.dumps(point.to_json()), flush=True)
    return point


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _each(api: client.ApiClient, names: list[str], call: Any) -> None:
    """Calls `call(name)` for every name from a few threads (creating 1,000 objects one by one is slow)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, names))


@contextlib.contextmanager
def cluster(name: str) -> Iterator[Kube]:
    env = {**os.environ, "CLUSTER_NAME": name}
    env.pop("KUBECONFIG", None)
    subprocess.run(["bash", str(REPO / "hack/cluster-up.sh")], env=env, check=True, timeout=1800)
    kube = Kube(str(cache_dir() / "clusters" / name / "kubeconfig"), str(built_kubectl()))
    kube.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", input=render_crd(min_interval="1s")
    )
    kube.wait_established()
    try:
        yield kube
    finally:
        # A fleet's kube-apiserver keeps working (garbage collection, watches) after the bench:
        # left running it would load every later measurement on this machine.
        if os.environ.get("LLMROLLOUT_KEEP_CLUSTER") != "1":
            subprocess.run(["bash", str(REPO / "hack/cluster-down.sh")], env=env, check=False, timeout=300)


def run_point(
    kube: Kube,
    prometheus: PrometheusServer,
    source: Path,
    n: int,
    seconds: float,
    batched: bool,
    logs: Path,
    operator_args: Sequence[str] = (),
) -> list[Point]:
    api = kube.api_client()
    objects = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    names = [f"d{i:04d}" for i in range(n)]
    reads = "batched" if batched else "unbatched"
    exporter = FleetExporter(names).start()
    prometheus.set_targets("fleet", [exporter.address], {})
    kube.kubectl("create", "namespace", NAMESPACE, check=False)
    for v in ("v1", "v2"):
        service = {"metadata": {"name": f"bench-{v}"}, "spec": {"ports": [{"port": 8000}]}}
        with contextlib.suppress(client.ApiException):
            core.create_namespaced_service(NAMESPACE, service)
    operator = Operator(kube.kubeconfig, source, logs / f"operator-{n}-{reads}.log", batched, operator_args)
    points = []
    try:
        _each(
            api,
            names,
            lambda name: objects.create_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, llmdeployment(name, prometheus.address, candidate=False)
            ),
        )
        settled = _wait_all(objects, n, "Idle", 900)
        time.sleep(INTERVAL)
        points.append(measure(n, "idle", reads, seconds, operator, prometheus, api, settled))
        patch = {"spec": {"candidate": "v2"}}
        _each(
            api,
            names,
            lambda name: objects.patch_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, name, patch
            ),
        )
        settled = _wait_all(objects, n, "Progressing", 900)
        time.sleep(INTERVAL)
        rolling = measure(n, "rolling", reads, seconds, operator, prometheus, api, settled)
        points.append(same_as_unbatched(rolling, api))
    finally:
        # Deleted while the operator runs: it removes its finalizer from each object.
        objects.delete_collection_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
        try:
            wait_for(lambda: not list_status(objects), 600, "the fleet deleted", interval=2)
        except AssertionError:
            # An operator too far behind to remove its finalizers in time: the next point needs an
            # empty namespace, so they go without it (the points measured are kept either way).
            unblock = {"metadata": {"finalizers": None}}
            _each(
                api,
                names,
                lambda name: _patch_quietly(objects, name, unblock),
            )
        finally:
            operator.stop()
            prometheus.remove_targets("fleet")
            exporter.stop()
    return points


def same_as_unbatched(point: Point, api: client.ApiClient) -> Point:
    """The point with its comparison of batched and unbatched reads (see same.py); after the
    measurement, so that its reads are not counted in the point's Prometheus queries."""
    try:
        compared, timings = read_both(
            api, GROUP, VERSION, PLURAL, NAMESPACE, datetime.now(UTC), INTERVAL, SCRAPE
        )
    except Exception as error:  # a comparison that could not run proves nothing: said, and failed
        note = f"batched and unbatched reads not compared: {type(error).__name__}: {error}"
        print(f"bench.scale: n={point.n} {point.reads}: {note}", file=sys.stderr, flush=True)
        return dataclasses.replace(point, notes=f"{point.notes}; {note}".lstrip("; "))
    sameness = tally(compared)
    print(
        f"bench.scale: n={point.n} {point.state} ({point.reads} operator): "
        f"{summary(sameness.compared, sameness.windows, sameness.decisions)} "
        f"(read in {timings.batched_s:g} s batched, {timings.alone_s:g} s one by one)",
        flush=True,
    )
    notes = "; ".join(note for note in (point.notes, differences_note(sameness)) if note)
    return dataclasses.replace(
        point,
        same_compared=sameness.compared,
        same_windows=sameness.windows,
        same_decisions=sameness.decisions,
        notes=notes,
    )


def _patch_quietly(objects: client.CustomObjectsApi, name: str, patch: dict[str, Any]) -> None:
    with contextlib.suppress(client.ApiException):
        objects.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name, patch)


def _wait_all(objects: client.CustomObjectsApi, n: int, phase: str, timeout: float) -> str:
    """Waits until every object is in `phase`; a fleet that does not get there in time is measured
    anyway, and the note says how far it got."""
    deadline = time.monotonic() + timeout
    ready = 0
    while time.monotonic() < deadline:
        ready = sum(1 for s in list_status(objects) if s.get("phase") == phase)
        if ready >= n:
            return ""
        time.sleep(3)
    return f"only {ready}/{n} {phase} after {timeout:.0f}s"


def _commit(source: Path) -> str:
    head = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(source), "status", "--porcelain", "operator"],
        capture_output=True,
        text=True,
        check=False,
    )
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _write(out: Path, points: list[Point], facts: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.md").write_text(markdown(points, facts))
    (out / "scale.json").write_text(
        json.dumps({"facts": facts, "points": [p.to_json() for p in points]}, indent=2) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--n", default="100,300,1000", help="fleet sizes, comma-separated")
    parser.add_argument("--quick", action="store_true", help="n=20,50 and 30 s per measurement")
    parser.add_argument("--seconds", type=float, default=120.0, help="measurement period per point")
    parser.add_argument("--reads", default="batched", help="batched, unbatched or both (compared at every N)")
    parser.add_argument("--operator-src", type=Path, default=REPO, help="checkout whose operator is measured")
    parser.add_argument("--cluster", default=os.environ.get("LLMROLLOUT_BENCH_CLUSTER", "llmrollout-bench"))
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write scale.md/json (default: bench/results; a temporary folder with --quick)",
    )
    parser.add_argument("--label", default="", help="a word on this run for the report (e.g. before)")
    parser.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        help="an extra `llmrollout run` argument, e.g. --operator-arg=--workers=16 (repeatable)",
    )
    args = parser.parse_args(argv)
    sizes = [20, 50] if args.quick else [int(x) for x in args.n.split(",")]
    seconds = 30.0 if args.quick else args.seconds
    modes = {"batched": [True], "unbatched": [False], "both": [False, True]}[args.reads]
    logs = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    out = args.out or (logs if args.quick else REPO / "bench" / "results")
    points: list[Point] = []
    facts = {
        "operator commit measured": _commit(args.operator_src),
        "run": args.label or "-",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores (shared with other work: CPU numbers are upper bounds)",
        "look interval / scrape interval": f"{INTERVAL:g} s / {SCRAPE:g} s",
        "measurement per point": f"{seconds:g} s",
        "logs": str(logs),
        "operator arguments": " ".join(args.operator_arg) or "-",
    }
    with cluster(args.cluster) as kube, PrometheusServer(logs / "prometheus", scrape_interval=SCRAPE) as prom:
        for n in sizes:
            for batched in modes:
                points += run_point(
                    kube, prom, args.operator_src.resolve(), n, seconds, batched, logs, args.operator_arg
                )
                _write(out, points, facts)  # after every point: a run cut short keeps what it measured
    print(markdown(points, facts))
    rolling = [p for p in points if p.state == "rolling"]
    for p in rolling:
        compared = (
            "not compared (see its notes)"
            if p.same_compared is None
            else summary(p.same_compared, p.same_windows or 0, p.same_decisions or 0)
        )
        print(f"n={p.n} rolling ({p.reads} operator): {compared}")
    # After the report is written: a rolling point whose reads differed (or were not compared) fails the run.
    return 0 if all(p.same_as_unbatched for p in rolling) else 1


if __name__ == "__main__":
    sys.exit(main())
