"""When a Lease may be taken over: its holder's renewal is older than its duration, or it has none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from llmrollout.k8s.leases import _expired

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("holder", "renewed_ago", "duration", "expired"),
    [
        ("a", 5.0, 15, False),
        ("a", 15.0, 15, False),  # exactly at the edge: still the holder's
        ("a", 15.1, 15, True),
        (None, 1.0, 15, True),  # released
        ("", 1.0, 15, True),
        ("a", None, 15, True),  # never renewed
        ("a", 1.0, None, True),
    ],
)
def test_expired(holder: str | None, renewed_ago: float | None, duration: int | None, expired: bool) -> None:
    spec = client.V1LeaseSpec(
        holder_identity=holder,
        renew_time=None if renewed_ago is None else NOW - timedelta(seconds=renewed_ago),
        lease_duration_seconds=duration,
    )
    assert _expired(spec, NOW) is expired
