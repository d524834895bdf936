"""How numbers read in messages: dollars in plain decimals."""

from __future__ import annotations

import math

import pytest

from llmrollout.analysis.messages import format_usd


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        (4.99e-05, "$0.0000499"),
        (0.0001, "$0.0001"),
        (0.00012345, "$0.000123"),
        (0.002, "$0.002"),
        (1.5, "$1.5"),
        (123.456, "$123"),
        (1234.5, "$1234"),  # whole dollars from three digits up: no rounding to $1.23e+03
        (0.0, "$0"),
        (-2.5e-05, "$-0.000025"),
        (math.inf, "$inf"),
    ],
)
def test_dollars_read_in_plain_decimals(usd: float, shown: str) -> None:
    assert format_usd(usd) == shown
