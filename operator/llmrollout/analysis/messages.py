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
    """Three significant digits in plain decimals: a request often costs under $0.0001, where
    scientific notation ($4.99e-05 against $0.0001) is hard to compare at a glance."""
    if usd == 0 or not math.isfinite(usd):
        return f"${usd:g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(usd))))
    text = f"{usd:.{decimals}f}"
    return "$" + (text.rstrip("0").rstrip(".") if "." in text else text)


def format_number(number: float) -> str:
    return f"{number:.4g}"


def count(value: float) -> int:
    """Counts from `increase()` are extrapolated and fractional; status shows whole observations."""
    return round(value) if math.isfinite(value) else 0


def confidence_label(miscoverage: float) -> str:
    return f"{100 * (1 - miscoverage):.4g}%"
