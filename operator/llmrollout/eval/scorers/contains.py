"""contains: the reference appears in the answer, up to case and whitespace."""

from __future__ import annotations

from llmrollout.eval._types import Exchange, Score
from llmrollout.eval.scorers._text import no_reference, normalise, reference_text


class Contains:
    name = "contains"
    needs_reference = True

    def score(self, exchange: Exchange) -> Score:
        reference = reference_text(exchange.reference)
        if reference is None:
            return Score("error", None, no_reference(self.name))
        found = normalise(reference) in normalise(exchange.response)
        return Score.of(1.0 if found else 0.0, found, "" if found else f"missing {reference[:80]!r}")
