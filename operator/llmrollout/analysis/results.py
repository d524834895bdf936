"""One SLO's verdict for one variant, in the shape that goes into status.analysis and Events."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llmrollout.analysis.verdict import Verdict

QUALITY_MIN_SCORE = "quality.minScore"
QUALITY_MAX_DROP = "quality.maxDropVsStable"
TTFT_P95 = "ttft.p95"
LATENCY_P95 = "latency.p95"
ERROR_RATE = "errorRate"
COST_PER_REQUEST = "costPerRequest"
FEEDBACK_MAX_DOWN = "feedback.maxDownRateVsStable"
CUSTOM_PREFIX = "custom."


def custom_slo_name(name: str) -> str:
    return CUSTOM_PREFIX + name


def _json_number(value: float | None) -> float | None:
    # NaN and infinities are not JSON; the API server would refuse the whole status patch.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class SLOResult:
    """`value` is what was measured, `bound` what the SLO allows, `samples` how many observations
    the value rests on; `message` says all of it in words, with the numbers."""

    slo: str
    variant: str
    value: float | None
    bound: float | None
    samples: int
    verdict: Verdict
    message: str

    @property
    def headline(self) -> str:
        """The message without its closing parenthesis of test details (the counts, the evidence and
        its thresholds), which status.analysis keeps: what a step's Event says of each SLO."""
        text = self.message
        if not text.endswith(")"):
            return text
        depth = 0
        for index in range(len(text) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(text[index], 0)
            if depth == 0:
                return text[:index].rstrip() or text
        return text

    def to_status(self) -> dict[str, Any]:
        """camelCase and JSON-safe (non-finite numbers become null)."""
        return {
            "slo": self.slo,
            "variant": self.variant,
            "value": _json_number(self.value),
            "bound": _json_number(self.bound),
            "samples": int(self.samples),
            "verdict": self.verdict.label,
            "message": self.message,
        }

    @classmethod
    def from_status(cls, data: Mapping[str, Any]) -> SLOResult:
        value = data.get("value")
        bound = data.get("bound")
        return cls(
            slo=str(data["slo"]),
            variant=str(data["variant"]),
            value=None if value is None else float(value),
            bound=None if bound is None else float(bound),
            samples=int(data.get("samples", 0)),
            verdict=Verdict.from_label(str(data["verdict"])),
            message=str(data.get("message", "")),
        )


def results_to_status(results: Iterable[SLOResult]) -> list[dict[str, Any]]:
    return [result.to_status() for result in results]


def results_from_status(entries: Iterable[Mapping[str, Any]]) -> list[SLOResult]:
    return [SLOResult.from_status(entry) for entry in entries]
