"""Leader election on a Lease: only the holder reconciles, so two replicas never both act.

The holder renews every third of the lease duration and stops acting two thirds of a duration
after its last successful renewal, before any standby may take an expired Lease over; a standby
takes over within one lease duration of the leader's last renewal. Status writes are fenced by
resourceVersion besides, so even a paused leader waking up late cannot overwrite a newer decision.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from llmrollout.handlers import telemetry
from llmrollout.k8s.leases import LeaseRef, release, try_acquire

DEFAULT_LEASE_SECONDS: Final = 15
logger = logging.getLogger(__name__)


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        lease: LeaseRef,
        identity: str,
        duration_seconds: int = DEFAULT_LEASE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.lease = lease
        self.identity = identity
        self.duration = duration_seconds
        self._clock = clock
        self._valid_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def is_leader(self) -> bool:
        return self._clock() < self._valid_until

    def attempt(self) -> bool:
        """One acquire-or-renew; True while this replica holds the Lease."""
        started = self._clock()
        try:
            won = try_acquire(self.api, self.lease, self.identity, self.duration, datetime.now(UTC))
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            logger.warning("lease %s/%s: %s", self.lease.namespace, self.lease.name, error)
            won = False
        was_leader = self.is_leader()
        if won:
            # Counted from before the request: the Lease's renewTime is no earlier than that.
            self._valid_until = started + self.duration * 2 / 3
        telemetry.LEADER.set(1 if won else 0)
        if won and not was_leader:
            logger.info(
                "leading: holding lease %s/%s as %s", self.lease.namespace, self.lease.name, self.identity
            )
        elif was_leader and not self.is_leader():
            logger.warning(
                "no longer leading: lease %s/%s not renewed", self.lease.namespace, self.lease.name
            )
        return won

    def _run(self) -> None:
        while not self._stop.is_set():
            self.attempt()
            self._stop.wait(self.duration / 3)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.is_leader():
            self._valid_until = 0.0
            try:
                release(self.api, self.lease, self.identity)
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
                logger.warning(
                    "could not release lease %s/%s: %s", self.lease.namespace, self.lease.name, error
                )
