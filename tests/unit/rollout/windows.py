"""Spec, traffic and windows shared by the state machine's table tests."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from llmrollout.analysis import Histogram, VariantWindow, Window
from llmrollout.api import LLMDeploymentSpec, parse_spec
from llmrollout.rollout import Observation

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def spec(**changes: Any) -> LLMDeploymentSpec:
    raw = yaml.safe_load((REPO / "examples/basic.yaml").read_text())["spec"]
    raw["slos"] = {"errorRate": {"max": 0.02}, "ttft": {"p95": "800ms"}, "quality": {"maxDropVsStable": 0.05}}
    raw["strategy"]["minRequests"] = 100
    raw["analysis"]["method"] = "threshold"
    # Without fallbacks nothing is read outside a rollout; test_rollout_fallback.py sets them.
    raw["fallbacks"] = []
    for path, value in changes.items():
        node = raw
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return parse_spec(raw)


def ttft(fast: float, slow: float) -> Histogram:
    """`fast` requests under 0.5 s, `slow` ones between 1 and 2 s."""
    return Histogram(((0.5, fast), (1.0, fast), (2.0, fast + slow), (math.inf, fast + slow)))


@dataclass
class Traffic:
    requests: float = 400
    errors: float = 4
    slow: float = 0
    score: float = 0.9
    # A `rated` share of the requests gets a thumbs up or down, `down_share` of those down.
    rated: float = 0.1
    down_share: float = 0.2
    missing: set[str] = field(default_factory=set)

    def window(self, variant: str) -> VariantWindow:
        def maybe(name: str, value: Any) -> Any:
            return None if name in self.missing else value

        judged = self.requests / 5
        return VariantWindow(
            variant=variant,
            requests=maybe("requests", self.requests),
            errors=maybe("errors", self.errors),
            ttft=maybe("ttft", ttft(self.requests - self.slow, self.slow)),
            eval_score_sum=maybe("eval", self.score * judged),
            eval_score_count=maybe("eval", judged),
            # A binary judge: a pass scores 1, a fail 0.
            eval_passed=maybe("eval", self.score * judged),
            eval_failed=maybe("eval", (1 - self.score) * judged),
            feedback_up=maybe("feedback", (1 - self.down_share) * self.rated * self.requests),
            feedback_down=maybe("feedback", self.down_share * self.rated * self.requests),
        )


HEALTHY = Traffic()


def observe(
    start: datetime, end: datetime, candidate: Traffic = HEALTHY, stable: Traffic = HEALTHY, **others: Traffic
) -> Observation:
    """A window with v1 (stable) and v2 (candidate) data, and any other variant named in `others`."""
    variants = {"v1": stable.window("v1"), "v2": candidate.window("v2")}
    variants.update({name: traffic.window(name) for name, traffic in others.items()})
    return Observation(start, end, window=Window(start.timestamp(), end.timestamp(), variants))
