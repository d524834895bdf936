"""exactMatch: the answer equals the reference, up to case and whitespace."""

from __future__ import annotations

from llmrollout.eval._types import Exchange, Score
from llmrollout.eval.scorers._text import no_reference, normalise, reference_text


class ExactMatch:
    name = "exactMatch"
    needs_reference = True

    def score(self, exchange: Exchange) -> Score:
        reference = reference_text(exchange.reference)
        if reference is None:
            return Score("error", None, no_reference(self.name))
        same = normalise(exchange.response) == normalise(reference)
        return Score.of(1.0 if same else 0.0, same, "" if same else f"expected {reference[:80]!r}")
