"""One exporter for a whole simulated fleet: every LLMDeployment's series, told apart by a label.

Real Prometheus exposition text over real HTTP, scraped by the real Prometheus: the operator reads
these series exactly as it reads a model server's. Counters grow with wall time at a fixed rate, so
every window of every deployment has the same healthy data (no errors, fast first tokens), and a
rollout passes its checks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEPLOYMENT_LABEL = "llmd"
VARIANT_LABEL = "variant"
REQUESTS_PER_SECOND = 2.0
_DURATION = "gen_ai_client_operation_duration_seconds"
_TTFT = "gen_ai_server_time_to_first_token_seconds"
_TOKENS = "gen_ai_client_token_usage"


def exposition(deployments: Sequence[str], variants: Sequence[str], elapsed: float) -> str:
    """The exposition text at `elapsed` seconds after the fleet started (pure, for tests)."""
    requests = int(REQUESTS_PER_SECOND * max(elapsed, 0.0))
    half = requests // 2
    lines: list[str] = []
    for name in deployments:
        for variant in variants:
            sel = f'{DEPLOYMENT_LABEL}="{name}",{VARIANT_LABEL}="{variant}"'
            lines.append(f"{_DURATION}_count{{{sel}}} {requests}")
            lines.append(f"{_DURATION}_sum{{{sel}}} {requests * 0.8:.1f}")
            for le, count in (("0.5", 0), ("1.0", half), ("2.0", requests), ("+Inf", requests)):
                lines.append(f'{_DURATION}_bucket{{{sel},le="{le}"}} {count}')
            for le, count in (("0.1", half), ("0.25", requests), ("1.0", requests), ("+Inf", requests)):
                lines.append(f'{_TTFT}_bucket{{{sel},le="{le}"}} {count}')
            lines.append(f'{_TOKENS}_sum{{{sel},gen_ai_token_type="input"}} {requests * 200}')
            lines.append(f'{_TOKENS}_sum{{{sel},gen_ai_token_type="output"}} {requests * 150}')
            lines.append(f"llm_eval_score_sum{{{sel}}} {half * 0.9:.1f}")
            lines.append(f"llm_eval_score_count{{{sel}}} {half}")
            lines.append(f'llm_eval_results_total{{{sel},result="pass"}} {half}')
            lines.append(f'llm_eval_results_total{{{sel},result="fail"}} 0')
    return "\n".join(lines) + "\n"


class FleetExporter:
    """Serves /metrics for `deployments` on a loopback port from a background thread."""

    def __init__(self, deployments: Sequence[str], variants: Sequence[str] = ("v1", "v2")) -> None:
        self.deployments = list(deployments)
        self.variants = list(variants)
        self.started = time.time()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exposition(exporter.deployments, exporter.variants, time.time() - exporter.started)
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> FleetExporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
