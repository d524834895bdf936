"""A coordination.k8s.io/v1 Lease as a lock: one operator replica holds it and acts, the others wait.

Every change of the Lease is a replace with its resourceVersion, so two replicas racing for an
expired Lease cannot both win: the loser gets a 409 and stays a follower.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kubernetes import client
from kubernetes.client.exceptions import ApiException

REQUEST_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class LeaseRef:
    namespace: str
    name: str


def _expired(spec: client.V1LeaseSpec, now: datetime) -> bool:
    if not spec.holder_identity or spec.renew_time is None or spec.lease_duration_seconds is None:
        return True
    renewed: datetime = spec.renew_time
    return now > renewed + timedelta(seconds=spec.lease_duration_seconds)


def try_acquire(
    api: client.ApiClient, lease: LeaseRef, identity: str, duration_seconds: int, now: datetime
) -> bool:
    """Takes or renews the Lease for `identity` at `now`; False while another holder's is current
    or when another replica won the race."""
    coordination = client.CoordinationV1Api(api)
    try:
        current = coordination.read_namespaced_lease(
            lease.name, lease.namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
    except ApiException as error:
        if error.status != 404:
            raise
        return _create(coordination, lease, identity, duration_seconds, now)
    spec: client.V1LeaseSpec = current.spec or client.V1LeaseSpec()
    ours = spec.holder_identity == identity
    if not ours and not _expired(spec, now):
        return False
    if not ours:
        spec.acquire_time = now
        spec.lease_transitions = (spec.lease_transitions or 0) + 1
    spec.holder_identity = identity
    spec.renew_time = now
    spec.lease_duration_seconds = duration_seconds
    current.spec = spec
    try:
        coordination.replace_namespaced_lease(
            lease.name, lease.namespace, current, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
    except ApiException as error:
        if error.status == 409:
            return False
        raise
    return True


def _create(
    coordination: client.CoordinationV1Api,
    lease: LeaseRef,
    identity: str,
    duration_seconds: int,
    now: datetime,
) -> bool:
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=lease.name, namespace=lease.namespace),
        spec=client.V1LeaseSpec(
            holder_identity=identity,
            acquire_time=now,
            renew_time=now,
            lease_duration_seconds=duration_seconds,
            lease_transitions=0,
        ),
    )
    try:
        coordination.create_namespaced_lease(lease.namespace, body, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    except ApiException as error:
        if error.status == 409:  # another replica created it first
            return False
        raise
    return True


def release(api: client.ApiClient, lease: LeaseRef, identity: str) -> None:
    """Gives the Lease up at shutdown, so a standby need not wait for it to expire."""
    coordination = client.CoordinationV1Api(api)
    try:
        current = coordination.read_namespaced_lease(
            lease.name, lease.namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
        if current.spec is None or current.spec.holder_identity != identity:
            return
        current.spec.holder_identity = None
        current.spec.renew_time = None
        coordination.replace_namespaced_lease(
            lease.name, lease.namespace, current, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
    except ApiException as error:
        if error.status not in (404, 409):
            raise


def holder(api: client.ApiClient, lease: LeaseRef) -> str | None:
    """The current holder's identity, or None."""
    try:
        current = client.CoordinationV1Api(api).read_namespaced_lease(
            lease.name, lease.namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    identity: str | None = current.spec.holder_identity if current.spec else None
    return identity
