"""The operator's own metrics (`/metrics`, prometheus-client) and log setup.

A registry of our own, not the process-wide default, so that what the endpoint serves is exactly
what is declared here (and tests can read it without other collectors).
"""

from __future__ import annotations

import logging
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY: Final = CollectorRegistry(auto_describe=True)

RECONCILES: Final = Counter(
    "llmrollout_reconciles_total",
    "Reconciles of LLMDeployments, by result (success, error).",
    ["result"],
    registry=REGISTRY,
)
RECONCILE_ERRORS: Final = Counter(
    "llmrollout_reconcile_errors_total",
    "Failed reconciles, by reason (Conflict, StatusWriteRefused, APIUnreachable, ...).",
    ["reason"],
    registry=REGISTRY,
)
DECISIONS: Final = Counter(
    "llmrollout_decisions_total",
    "Decisions posted as Events, by kind (the Event reason: StepAdvanced, Promoted, RolledBack, ...).",
    ["kind"],
    registry=REGISTRY,
)
METRICS_READ_SECONDS: Final = Histogram(
    "llmrollout_metrics_read_seconds",
    "Time to read one analysis window's metrics (all queries of all watched variants).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
ROLLOUT_SECONDS: Final = Histogram(
    "llmrollout_rollout_duration_seconds",
    "From a rollout's start to its promotion or rollback, by outcome.",
    ["outcome"],
    buckets=(60, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400),
    registry=REGISTRY,
)
LEADER: Final = Gauge(
    "llmrollout_leader", "1 while this replica acts (holds the Lease, or runs alone).", registry=REGISTRY
)

# Third-party loggers that say something on every request or every handler run at INFO.
_CHATTY: Final = ("httpx", "httpcore", "kopf.objects", "urllib3")


def serve(address: str) -> None:
    """Serves /metrics on HOST:PORT (e.g. 0.0.0.0:8081) from a background thread."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        raise ValueError(f"--metrics-address must be HOST:PORT, not {address!r}")
    start_http_server(int(port), addr=host or "0.0.0.0", registry=REGISTRY)


def quiet_third_party_logs() -> None:
    """At INFO, the log holds decisions and errors: not one line per HTTP request or timer run
    (Kopf's object logger still says every failure, at ERROR)."""
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
