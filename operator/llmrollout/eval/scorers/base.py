"""The seam between the engine and a way of scoring answers: one Protocol."""

from __future__ import annotations

from typing import Protocol

from llmrollout.eval._types import Exchange, Score


class UnknownScorerError(ValueError):
    """A scorer name this build does not know; never replaced by a default."""


class Scorer(Protocol):
    @property
    def name(self) -> str:
        """The scorer's spec name (exactMatch, llmJudge, ...), used in reports and metrics."""
        ...

    @property
    def needs_reference(self) -> bool:
        """Whether every item must carry a reference; checked when a golden set is loaded."""
        ...

    def score(self, exchange: Exchange) -> Score:
        """The verdict on `exchange.response`; endpoint failures become an "error" Score, not exceptions."""
        ...
