"""Whether the Services that variants point at exist: a watch's answer where it has one, a GET
otherwise."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

# Without a timeout a hung apiserver connection would block this object's reconcile forever.
REQUEST_TIMEOUT_SECONDS = 10.0
# How long the watch's "it exists" is trusted without a new event or a GET confirming it. A watch
# that lost events (a stream cut, a re-list that does not report deletions) would otherwise hide a
# deleted Service forever; this bounds that to one GET per Service per period, not one per look.
TRUST_SECONDS: Final = 300.0

_Ref = tuple[str, str]  # (namespace, name)


class ServiceWatch:
    """The Services a watch has seen, and which objects (keys) refer to which of them. Only "it
    exists" is answered from here; a name not seen (the listing not done yet, or deleted) is asked
    of the API, so a missing Service is never reported wrongly. Thread-safe; no I/O."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, trust_seconds: float = TRUST_SECONDS):
        self._clock = clock
        self._trust = trust_seconds
        self._lock = threading.Lock()
        self._seen: dict[_Ref, float] = {}  # when the watch (or a GET) last confirmed it
        self._refs: dict[str, frozenset[_Ref]] = {}
        self._referrers: dict[_Ref, set[str]] = {}

    def exists(self, namespace: str, name: str) -> bool:
        with self._lock:
            seen = self._seen.get((namespace, name))
        return seen is not None and self._clock() - seen < self._trust

    def saw(self, namespace: str, name: str, present: bool) -> list[str]:
        """A watch event: the Service exists (`present`) or was deleted. Returns the keys of the
        objects that refer to it when its existence changed, sorted (they need a look)."""
        ref = (namespace, name)
        with self._lock:
            before = ref in self._seen
            if present:
                self._seen[ref] = self._clock()
            else:
                self._seen.pop(ref, None)
            return sorted(self._referrers.get(ref, ())) if before != present else []

    def confirmed(self, namespace: str, name: str, present: bool) -> None:
        """A GET's answer. It renews only what the watch already saw (a GET that raced a deletion
        must not bring the Service back); a 404 drops it."""
        ref = (namespace, name)
        with self._lock:
            if not present:
                self._seen.pop(ref, None)
            elif ref in self._seen:
                self._seen[ref] = self._clock()

    def refer(self, key: str, namespace: str, names: Iterable[str]) -> None:
        """Object `key` (in `namespace`) points at these Services now."""
        refs = frozenset((namespace, n) for n in names)
        with self._lock:
            before = self._refs.get(key, frozenset())
            if refs == before:
                return
            for ref in before - refs:
                keys = self._referrers.get(ref)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._referrers[ref]
            for ref in refs - before:
                self._referrers.setdefault(ref, set()).add(key)
            if refs:
                self._refs[key] = refs
            else:
                self._refs.pop(key, None)

    def forget(self, key: str) -> None:
        self.refer(key, "", ())


def missing_services(
    api: client.ApiClient,
    namespace: str,
    names: Iterable[str],
    *,
    watch: ServiceWatch | None = None,
    request_timeout: float = REQUEST_TIMEOUT_SECONDS,
) -> list[str]:
    core = client.CoreV1Api(api)
    missing = []
    for name in sorted(set(names)):
        if watch is not None and watch.exists(namespace, name):
            continue
        try:
            core.read_namespaced_service(name, namespace, _request_timeout=request_timeout)
        except ApiException as error:
            if error.status != 404:
                raise
            missing.append(name)
            if watch is not None:
                watch.confirmed(namespace, name, False)
        else:
            if watch is not None:
                watch.confirmed(namespace, name, True)
    return missing
