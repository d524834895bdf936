"""The sequential method's evidence: its state, a look's updates to it, warm-up and configuration."""

from llmrollout.analysis.evidence.config import (
    P95_EXCEEDANCE,
    PERCENTILE_EDGE_TESTS,
    STABLE_P95_MIN_REQUESTS,
    STEP_REQUEST_KEYS,
    WINDOW_OVERLAP_SLACK_SECONDS,
    SequentialConfig,
)
from llmrollout.analysis.evidence.look import Look
from llmrollout.analysis.evidence.state import STATE_VERSION, SequentialState, Sums, load_state

__all__ = [
    "P95_EXCEEDANCE",
    "PERCENTILE_EDGE_TESTS",
    "STABLE_P95_MIN_REQUESTS",
    "STATE_VERSION",
    "STEP_REQUEST_KEYS",
    "WINDOW_OVERLAP_SLACK_SECONDS",
    "Look",
    "SequentialConfig",
    "SequentialState",
    "Sums",
    "load_state",
]
