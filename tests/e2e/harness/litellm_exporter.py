"""A LiteLLM-proxy-compatible metrics exporter: LiteLLM's names and labels, through prometheus_client.

Names, labels and buckets are those of LiteLLM's Prometheus callback (litellm/integrations/
prometheus.py with the label lists of litellm/types/integrations/prometheus.py, commit 0267264):
every request counts in `litellm_proxy_total_requests_metric{requested_model,status_code,...}`; a
failure also counts in `litellm_proxy_failed_requests_metric{exception_status,exception_class,...}`
(client errors such as 400 and 429 included); latency is `litellm_request_total_latency_metric`; tokens
`litellm_input_tokens_metric` and `litellm_output_tokens_metric`. The real proxy is not run here: this
stands in for it where the names are what matters.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

LATENCY_BUCKETS = (0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
                   5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0, 120.0,
                   180.0, 240.0, 300.0)  # fmt: skip
_KEY = ["end_user", "hashed_api_key", "api_key_alias"]
TOTAL_LABELS = [*_KEY, "requested_model", "team", "team_alias", "user", "status_code"]
FAILED_LABELS = [
    *_KEY,
    "requested_model",
    "team",
    "team_alias",
    "user",
    "exception_status",
    "exception_class",
]
LATENCY_LABELS = [*_KEY, "requested_model", "team", "team_alias", "user", "model"]
TOKEN_LABELS = [*_KEY, "model", "team", "team_alias", "user", "requested_model"]
EXCEPTION_CLASSES = {"400": "BadRequestError", "429": "RateLimitError", "408": "Timeout", "500": "APIError"}


class LiteLLMMetrics:
    """LiteLLM's proxy series in `registry` (a model server's, or an exporter's own)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.total = Counter("litellm_proxy_total_requests_metric", "", TOTAL_LABELS, registry=r)
        self.failed = Counter("litellm_proxy_failed_requests_metric", "", FAILED_LABELS, registry=r)
        self.latency = Histogram(
            "litellm_request_total_latency_metric", "", LATENCY_LABELS, buckets=LATENCY_BUCKETS, registry=r
        )
        self.input = Counter("litellm_input_tokens_metric", "", TOKEN_LABELS, registry=r)
        self.output = Counter("litellm_output_tokens_metric", "", TOKEN_LABELS, registry=r)
        self.truth: Tally[tuple[str, str]] = Tally()
        self._lock = threading.Lock()

    def request(
        self,
        requested_model: str,
        status: int = 200,
        latency: float = 0.8,
        tokens: int = 100,
        output_tokens: int | None = None,
    ) -> None:
        key = ["", "hash", "alias"]
        model = f"openai/{requested_model}"
        with self._lock:
            self.total.labels(*key, requested_model, "team-a", "", "u", str(status)).inc()
            self.truth[(requested_model, str(status))] += 1
            if status >= 400:
                self.failed.labels(
                    *key,
                    requested_model,
                    "team-a",
                    "",
                    "u",
                    str(status),
                    EXCEPTION_CLASSES.get(str(status), ""),
                ).inc()
                return
            self.latency.labels(*key, requested_model, "team-a", "", "u", model).observe(latency)
            self.input.labels(*key, model, "team-a", "", "u", requested_model).inc(tokens)
            out = tokens // 2 if output_tokens is None else output_tokens
            self.output.labels(*key, model, "team-a", "", "u", requested_model).inc(out)


class LiteLLMExporter(LiteLLMMetrics):
    """One LiteLLM proxy's /metrics, serving `requested_model` (the alias clients ask for)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry()
        super().__init__(self.registry)
        self.server, self.thread = start_http_server(0, addr=host, registry=self.registry)
        self.target = f"{host}:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
