"""The real Prometheus server (Debian's /usr/bin/prometheus), run as a child process for tests.

Targets are added and removed through file-based service discovery (`file_sd_configs`, one JSON file per
group in `<workdir>/targets/`) rather than by rewriting the config and POSTing `/-/reload`. Both were
measured on Prometheus 2.42 and take the same 4-5 s from change to first sample: the discovery
manager only hands new target sets to the scrape manager on a fixed 5 s tick, which no flag changes.
File SD wins on everything else: a change touches only the target set, so scrape loops of other tests'
targets keep running (a reload with changed static_configs restarts every loop of the job); it works
while Prometheus is stopped (the files are read at start); and it needs no HTTP round trip that can fail.

Every target gets the labels it is registered with (e.g. `variant`, `namespace`), as Kubernetes service
discovery relabelling would attach them; the scraped servers do not export them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

JOB = "llmrollout-e2e"
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_PR_SET_PDEATHSIG = 1


class PrometheusError(RuntimeError):
    """Prometheus did not start, stop, or answer as expected; the message carries its log's tail."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant-query result; a scalar result has no labels."""

    labels: dict[str, str]
    value: float


def default_binary() -> str:
    return os.environ.get("LLMROLLOUT_PROMETHEUS") or shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


# Loaded before any fork: the child of a multi-threaded parent must not take the loader's locks.
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None


def _die_with_parent() -> None:
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class PrometheusServer:
    """Start, stop, restart and query one Prometheus on a loopback port with its data in `workdir`.

    `stop()` then `start()` keeps the port and the TSDB, as a Prometheus outage would. Everything is
    bounded: readiness waits `ready_timeout`, a stop escalates to SIGKILL after `stop_timeout`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        binary: str | None = None,
        scrape_interval: float = 1.0,
        evaluation_interval: float | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        ready_timeout: float = 30.0,
        stop_timeout: float = 15.0,
        extra_args: Sequence[str] = (),
        targets_dir: Path | None = None,
        basic_auth: tuple[str, str, str] | None = None,
    ) -> None:
        """`targets_dir`: another server's, to scrape the same targets (default: its own).
        `basic_auth`: (user, password, bcrypt hash of it): the server refuses requests without
        them (`--web.config.file` with basic_auth_users); this object's own queries send them."""
        self.workdir = Path(workdir)
        self.binary = binary or default_binary()
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval or scrape_interval
        self.host = host
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = tuple(extra_args)
        self._port = port
        self._port_given = port is not None
        self._process: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self.config_path = self.workdir / "prometheus.yml"
        self.data_dir = self.workdir / "data"
        self.targets_dir = targets_dir or self.workdir / "targets"
        self.basic_auth = basic_auth
        self.web_config_path = self.workdir / "web.yml"
        self.log_path = self.workdir / "prometheus.log"
        atexit.register(self._kill_at_exit)

    # lifecycle ------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise PrometheusError("Prometheus has not been started yet, so it has no port")
        return self._port

    @property
    def address(self) -> str:
        """http://127.0.0.1:PORT, the URL to give the operator (`spec.metrics.prometheus.address`)."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    def start(self) -> Self:
        """Start (or start again on the same port and data) and wait until /-/ready answers."""
        with self._lock:
            if self.running:
                return self
            if not Path(self.binary).exists():
                raise PrometheusError(f"no Prometheus binary at {self.binary} (Debian package `prometheus`)")
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.targets_dir.mkdir(exist_ok=True)
            self.data_dir.mkdir(exist_ok=True)
            self._write_config()
            # A port picked here may be taken before Prometheus binds it; only a port we picked
            # ourselves on the first start may be replaced, since a restart must keep its address.
            attempts = 1 if self._port_given or self._port is not None else 3
            for attempt in range(attempts):
                if self._port is None or attempt > 0:
                    self._port = free_port(self.host)
                try:
                    self._launch()
                    return self
                except _PortTakenError:
                    if attempt == attempts - 1:
                        raise PrometheusError(f"port {self._port} is taken:\n{self.log_tail()}") from None
            return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout`; returns once the process is gone."""
        with self._lock:
            process, self._process = self._process, None
            if self._client is not None:
                self._client.close()
                self._client = None
            if process is None or process.poll() is not None:
                return
            process.terminate()
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _launch(self) -> None:
        args = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={self.host}:{self._port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            *([f"--web.config.file={self.web_config_path}"] if self.basic_auth else []),
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        log.write(f"\n==== {time.strftime('%H:%M:%S')} starting: {' '.join(args)}\n".encode())
        log.flush()
        # PDEATHSIG fires when the forking *thread* exits, so it is only safe from the main thread;
        # it is what keeps a killed pytest from leaving Prometheus behind.
        main = threading.current_thread() is threading.main_thread()
        try:
            self._process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if main else None,  # noqa: PLW1509
            )
        finally:
            log.close()
        auth = (self.basic_auth[0], self.basic_auth[1]) if self.basic_auth else None
        self._client = httpx.Client(base_url=self.address, timeout=5.0, auth=auth)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                tail = self.log_tail()
                if "address already in use" in tail:
                    raise _PortTakenError
                raise PrometheusError(f"Prometheus exited while starting:\n{tail}")
            if self.ready():
                return
            time.sleep(0.05)
        process, self._process = self._process, None
        process.kill()
        process.wait(timeout=10)
        raise PrometheusError(f"Prometheus not ready after {self.ready_timeout}s:\n{self.log_tail()}")

    def ready(self) -> bool:
        if self._client is None:
            return False
        try:
            return self._client.get("/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def reload(self) -> None:
        """Re-read the config file (POST /-/reload); targets do not need it (file SD)."""
        self._http().post("/-/reload").raise_for_status()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def _kill_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def _write_config(self) -> None:
        config = {
            "global": {
                "scrape_interval": _duration(self.scrape_interval),
                "scrape_timeout": _duration(self.scrape_interval),
                "evaluation_interval": _duration(self.evaluation_interval),
            },
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "file_sd_configs": [
                        {
                            "files": [str(self.targets_dir / "*.json")],
                            # inotify picks changes up at once; the refresh is a fallback for
                            # file systems without it.
                            "refresh_interval": _duration(max(self.scrape_interval, 1.0)),
                        }
                    ],
                }
            ],
        }
        # JSON is YAML, and needs no YAML library here.
        self.config_path.write_text(json.dumps(config, indent=2))
        if self.basic_auth:
            user, _, bcrypt_hash = self.basic_auth
            self.web_config_path.write_text(json.dumps({"basic_auth_users": {user: bcrypt_hash}}))

    # targets --------------------------------------------------------------------------------------

    def set_targets(self, group: str, targets: Sequence[str], labels: Mapping[str, str]) -> None:
        """Scrape `targets` (host:port) with `labels` attached; replaces an earlier group of that name.

        Takes 4-5 s to reach Prometheus (see the module docstring); `wait_for_targets` waits for it.
        """
        for name, value in labels.items():
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(f"invalid target label name {name!r}")
            if not isinstance(value, str):
                raise ValueError(f"label {name} must be a string, got {value!r}")
        path = self._group_path(group)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": list(targets), "labels": dict(labels)}]))
        # The rename makes the change atomic: Prometheus never reads a half-written file.
        tmp.replace(path)

    def remove_targets(self, group: str) -> None:
        self._group_path(group).unlink(missing_ok=True)

    def target_groups(self) -> list[str]:
        return sorted(p.stem for p in self.targets_dir.glob("*.json"))

    def _group_path(self, group: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", group)
        return self.targets_dir / f"{safe}.json"

    def targets(self) -> list[dict[str, Any]]:
        """Active targets as /api/v1/targets reports them (labels, health, lastScrape, lastError, ...)."""
        body = self._api("/api/v1/targets", {"state": "active"})
        return list(body["activeTargets"])

    def wait_for_targets(
        self, match: Mapping[str, str], count: int, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Wait until `count` active targets carrying the labels `match` have been scraped and are up."""
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while True:
            with contextlib.suppress(httpx.HTTPError, PrometheusError):
                last = [t for t in self.targets() if all(t["labels"].get(k) == v for k, v in match.items())]
                if len(last) >= count and all(t["health"] == "up" for t in last):
                    return last
            if time.monotonic() >= deadline:
                seen = [(t["scrapeUrl"], t["health"], t.get("lastError", "")) for t in last]
                raise AssertionError(
                    f"Prometheus did not scrape {count} target(s) with {dict(match)} within {timeout}s; "
                    f"seen: {seen}"
                )
            time.sleep(0.1)

    # queries --------------------------------------------------------------------------------------

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """An instant query; a vector comes back as samples, a scalar as one sample without labels."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._api("/api/v1/query", params)
        kind, result = data["resultType"], data["result"]
        if kind == "vector":
            return [Sample(dict(r["metric"]), float(r["value"][1])) for r in result]
        if kind == "scalar":
            return [Sample({}, float(result[1]))]
        raise PrometheusError(
            f"{promql!r} gives a {kind}; query() takes expressions that give a vector or scalar"
        )

    def query_value(self, promql: str) -> float | None:
        """The single value of a query; None when it gives no samples (or NaN), an error when several."""
        samples = self.query(promql)
        if not samples:
            return None
        if len(samples) > 1:
            raise PrometheusError(f"{promql!r} gives {len(samples)} samples, expected one: {samples}")
        value = samples[0].value
        return None if math.isnan(value) else value

    def query_by(self, promql: str, label: str) -> dict[str, float]:
        """{value of `label`: value}, e.g. query_by('sum by (variant) (...)', 'variant')."""
        return {s.labels.get(label, ""): s.value for s in self.query(promql)}

    def wait_until(
        self,
        promql: str,
        condition: Callable[[list[Sample]], bool],
        timeout: float = 15.0,
        what: str = "",
    ) -> list[Sample]:
        """Poll `promql` until `condition(samples)` holds; fail with the last result at the deadline."""
        deadline = time.monotonic() + timeout
        last: list[Sample] | str = []
        while True:
            try:
                samples = self.query(promql)
                if condition(samples):
                    return samples
                last = samples
            except (httpx.HTTPError, PrometheusError) as exc:
                last = f"error: {exc}"
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or promql}; last: {last}")
            time.sleep(min(0.2, self.scrape_interval / 4))

    def _http(self) -> httpx.Client:
        if self._client is None or not self.running:
            raise PrometheusError(f"Prometheus is not running (log: {self.log_path})")
        return self._client

    def _api(self, path: str, params: Mapping[str, str]) -> Any:
        response = self._http().get(path, params=params)
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(
                f"GET {path}: HTTP {response.status_code}, not JSON: {response.text[:300]}"
            ) from None
        if body.get("status") != "success":
            raise PrometheusError(f"GET {path} {dict(params)}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]


class _PortTakenError(Exception):
    pass
