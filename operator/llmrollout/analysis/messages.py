"""How numbers read in SLO messages, status and Events; shared by every method and SLO family."""

from __future__ import annotations

import math
from collections.abc import Callable

Formatter = Callable[[float], str]


def format_seconds(seconds: float) -> str:
    return f"{seconds:.2f}s" if abs(seconds) >= 0.1 or seconds == 0 else f"{seconds * 1000:.1f}ms"


def format_ratio(ratio: float) -> str:
    return f"{ratio:.3f}" if abs(ratio) >= 0.001 or ratio == 0 else f"{ratio:.2g}"


def format_usd(usd: float) -> str:
    return f"${usd:.3g}"


def format_number(number: float) -> str:
    return f"{number:.4g}"


def count(value: float) -> int:
    """Counts from `increase()` are extrapolated and fractional; status shows whole observations."""
    return round(value) if math.isfinite(value) else 0


def confidence_label(miscoverage: float) -> str:
    return f"{100 * (1 - miscoverage):.4g}%"
