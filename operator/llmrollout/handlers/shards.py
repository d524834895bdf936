"""Which LLMDeployments this process handles: a shard of a stable hash (`--shard i/N`) and/or a
label selector (`--selector`). Each shard holds its own Lease, so there is one writer per object
without consensus of our own: Kubernetes Leases and label selectors only. Pure: no I/O."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

_SHARD: Final = re.compile(r"^(\d+)/(\d+)$")
_SET: Final = re.compile(r"^([A-Za-z0-9./_-]+)\s+(in|notin)\s+\(([^()]*)\)$")
_KEY: Final = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9./_-]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        return not present or value not in self.values  # "!=", "notin"


@dataclass(frozen=True)
class Shard:
    """Objects whose stable hash modulo `count` is `index`, that the selector admits."""

    index: int = 0
    count: int = 1
    selector: tuple[Requirement, ...] = field(default=())

    def owns(self, namespace: str | None, name: str | None, labels: Mapping[str, str] | None) -> bool:
        if self.count > 1 and shard_of(namespace, name, self.count) != self.index:
            return False
        return all(r.matches(labels or {}) for r in self.selector)

    def lease_name(self, base: str) -> str:
        """Each shard's own Lease; a single shard keeps the plain name (no change for one replica set)."""
        return base if self.count == 1 else f"{base}-shard-{self.index}"

    def describe(self) -> str:
        return f"shard {self.index}/{self.count}" if self.count > 1 else "all objects"


def shard_of(namespace: str | None, name: str | None, count: int) -> int:
    """A hash of namespace/name that every process (and every Python version) computes alike."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str) -> tuple[int, int]:
    """'i/N' -> (i, N); ValueError naming what is wrong."""
    match = _SHARD.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not i/N (e.g. 0/2)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise ValueError(f"{text!r}: needs N >= 1 and 0 <= i < N")
    return index, count


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """A Kubernetes label selector (k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k; comma-separated);
    ValueError naming the part it cannot read."""
    requirements = []
    for raw in _split(text):
        part = raw.strip()
        if not part:
            continue
        if (found := _SET.match(part)) is not None:
            values = frozenset(v.strip() for v in found.group(3).split(",") if v.strip())
            requirements.append(Requirement(_key(found.group(1), part), found.group(2), values))
        elif "!=" in part:
            key, value = part.split("!=", 1)
            requirements.append(Requirement(_key(key.strip(), part), "!=", frozenset([value.strip()])))
        elif "=" in part:
            key, value = part.replace("==", "=", 1).split("=", 1)
            requirements.append(Requirement(_key(key.strip(), part), "=", frozenset([value.strip()])))
        elif part.startswith("!"):
            requirements.append(Requirement(_key(part[1:].strip(), part), "!exists"))
        else:
            requirements.append(Requirement(_key(part, part), "exists"))
    return tuple(requirements)


def _key(key: str, part: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"{part!r}: {key!r} is not a label key")
    return key


def _split(text: str) -> list[str]:
    """Splits on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts
