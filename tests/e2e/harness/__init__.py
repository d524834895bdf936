"""e2e harness: simulated model servers, the real Prometheus, and a stand-in for the gateway's data plane.

Stand-ins exist only for what cannot run here (LLM model servers, the gateway's data plane); both sit on
the real metric path: real HTTP servers export real Prometheus metrics that the real Prometheus scrapes.
"""

from tests.e2e.harness.modelserver import Behaviour, ModelServer, ServerStats
from tests.e2e.harness.prometheus import PrometheusServer, Sample
from tests.e2e.harness.traffic import FixedWeights, HTTPRouteWeights, TrafficGenerator, TrafficStats

__all__ = [
    "Behaviour",
    "FixedWeights",
    "HTTPRouteWeights",
    "ModelServer",
    "PrometheusServer",
    "Sample",
    "ServerStats",
    "TrafficGenerator",
    "TrafficStats",
]
