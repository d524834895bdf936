from __future__ import annotations

from datetime import timedelta

import pytest

from llmrollout.api import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("800ms", timedelta(milliseconds=800)),
        ("5s", timedelta(seconds=5)),
        ("1m", timedelta(minutes=1)),
        ("1m30s", timedelta(seconds=90)),
        ("1.5h", timedelta(minutes=90)),
        ("2h0m1s", timedelta(hours=2, seconds=1)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "1 minute", "-1s", "1d", "s", "1m 30s", "1.s"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(milliseconds=800), "800ms"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=1), "1h"),
        (timedelta(0), "0s"),
        (timedelta(milliseconds=1500), "1500ms"),
    ],
)
def test_format_round_trips(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value
