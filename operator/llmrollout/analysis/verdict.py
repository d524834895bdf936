"""The outcome of one check, ordered so that the worst of several is simply the largest."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class Verdict(IntEnum):
    """PASS < INCONCLUSIVE < FAIL, as in Argo Rollouts: one failure outweighs any number of passes."""

    PASS = 0
    INCONCLUSIVE = 1
    FAIL = 2

    @property
    def label(self) -> str:
        """The spelling used in status and Events: Pass, Inconclusive, Fail."""
        return self.name.capitalize()

    @classmethod
    def from_label(cls, label: str) -> Verdict:
        """Read back `label` (any case); an unknown word is an error, never a silent pass."""
        try:
            return cls[label.upper()]
        except KeyError:
            raise ValueError(f"unknown verdict {label!r}; expected Pass, Inconclusive or Fail") from None


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The worst verdict; with none at all, INCONCLUSIVE, because no evidence must never promote."""
    return max(verdicts, default=Verdict.INCONCLUSIVE)
