"""What the sequential tests remember between looks: small, JSON-safe, and kept in status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmrollout.analysis.ratio_test import RateRatioTest

STATE_VERSION = 1


@dataclass(frozen=True)
class Sums:
    """Running sum of per-request values and the number of requests they came from."""

    total: float = 0.0
    count: float = 0.0

    def add(self, total: float, count: float) -> Sums:
        return Sums(self.total + total, self.count + count)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count > 0 else None

    def to_status(self) -> dict[str, float]:
        return {"total": self.total, "count": self.count}

    @classmethod
    def from_status(cls, data: Mapping[str, Any]) -> Sums:
        return cls(float(data["total"]), float(data["count"]))


@dataclass(frozen=True)
class SequentialState:
    """Everything the tests remember between looks; stored in status, so it must stay small.

    Keys of `sums` and `ratio_tests` name the SLO and, where it matters, the bucket edge or bound
    they were computed at: when the spec changes those, the old evidence no longer applies and is
    dropped instead of being misread.
    """

    candidate: str
    stable: str
    last_window_end: float | None = None
    step: int | None = None
    step_requests: Mapping[str, float] = field(default_factory=dict)
    looks: int = 0
    sums: Mapping[str, Sums] = field(default_factory=dict)
    ratio_tests: Mapping[str, RateRatioTest] = field(default_factory=dict)
    custom_breaches: Mapping[str, int] = field(default_factory=dict)
    # SLO -> the message of its first rollback verdict. A test that crossed its boundary has decided;
    # later data may pull the e-value back down, but Ville's bound is about ever crossing it.
    failures: Mapping[str, str] = field(default_factory=dict)
    # The start of the candidate's first window, for its warm-up; None when there is none (the state
    # was started for a new stable only, or was written before warm-ups existed).
    started_at: float | None = None

    def to_status(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "candidate": self.candidate,
            "stable": self.stable,
            "lastWindowEnd": self.last_window_end,
            "step": self.step,
            "stepRequests": dict(self.step_requests),
            "looks": self.looks,
            "sums": {key: sums.to_status() for key, sums in self.sums.items()},
            "ratioTests": {key: test.to_status() for key, test in self.ratio_tests.items()},
            "customBreaches": dict(self.custom_breaches),
            "failures": dict(self.failures),
            "startedAt": self.started_at,
        }

    @classmethod
    def from_status(cls, data: Mapping[str, Any]) -> SequentialState:
        """Raises ValueError (or KeyError/TypeError) on state this code cannot read; see load_state."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"sequential state version {data.get('version')!r} is not {STATE_VERSION}")
        last_end = data.get("lastWindowEnd")
        step = data.get("step")
        started_at = data.get("startedAt")
        return cls(
            candidate=str(data["candidate"]),
            stable=str(data["stable"]),
            last_window_end=None if last_end is None else float(last_end),
            step=None if step is None else int(step),
            step_requests={str(k): float(v) for k, v in data.get("stepRequests", {}).items()},
            looks=int(data.get("looks", 0)),
            sums={str(k): Sums.from_status(v) for k, v in data.get("sums", {}).items()},
            ratio_tests={str(k): RateRatioTest.from_status(v) for k, v in data.get("ratioTests", {}).items()},
            custom_breaches={str(k): int(v) for k, v in data.get("customBreaches", {}).items()},
            failures={str(k): str(v) for k, v in data.get("failures", {}).items()},
            started_at=None if started_at is None else float(started_at),
        )


def load_state(data: Mapping[str, Any] | None) -> SequentialState | None:
    """State from status, or None (start afresh) when absent or unreadable: a corrupt or outdated
    state costs the evidence gathered so far, never a crash loop."""
    if not data:
        return None
    try:
        return SequentialState.from_status(data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
