"""What the sequential tests remember between looks, for every replicate: small and JSON-safe.

For the operator (a batch of one) it lives in status.analysis.sequential, so a restarted operator
continues the same tests; it is discarded when the candidate or stable changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
STATE_VERSION = 2


@dataclass
class SequentialState:
    """`values` maps a name (a test's evidence, a chosen parameter, a pool of stable's data) to an
    array whose first axis is the replicate. `failures` keeps, per SLO, the message of the look that
    rolled it back (only for a batch of one: the operator's)."""

    candidate: str
    stable: str
    replicates: int = 1
    started_at: float | None = None  # the candidate's first window, for its warm-up
    last_window_end: float | None = None
    looks: int = 0
    values: dict[str, FloatArray] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: float = 0.0) -> FloatArray:
        found = self.values.get(key)
        return np.full(self.replicates, default) if found is None else found

    def to_status(self) -> dict[str, Any]:
        """JSON for a batch of one: every array's first (only) replicate; NaN becomes null."""
        if self.replicates != 1:
            raise ValueError("only a batch of one is kept in status")

        def plain(value: Any) -> Any:
            if isinstance(value, float):
                return value if math.isfinite(value) else None
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        return {
            "version": STATE_VERSION,
            "candidate": self.candidate,
            "stable": self.stable,
            "startedAt": self.started_at,
            "lastWindowEnd": self.last_window_end,
            "looks": self.looks,
            "values": {key: plain(array[0].tolist()) for key, array in sorted(self.values.items())},
            "failures": dict(self.failures),
        }

    @classmethod
    def from_status(cls, data: Mapping[str, Any]) -> SequentialState:
        """Raises ValueError (or KeyError/TypeError) on state this code cannot read; see load_state."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"sequential state version {data.get('version')!r} is not {STATE_VERSION}")

        def array(value: Any) -> FloatArray:
            if isinstance(value, list):
                return np.array([[math.nan if v is None else float(v) for v in value]])
            return np.array([math.nan if value is None else float(value)])

        started, last = data.get("startedAt"), data.get("lastWindowEnd")
        return cls(
            candidate=str(data["candidate"]),
            stable=str(data["stable"]),
            started_at=None if started is None else float(started),
            last_window_end=None if last is None else float(last),
            looks=int(data.get("looks", 0)),
            values={str(key): array(value) for key, value in dict(data.get("values", {})).items()},
            failures={str(k): str(v) for k, v in dict(data.get("failures", {})).items()},
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
