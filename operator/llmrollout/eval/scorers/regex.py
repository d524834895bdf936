"""regex: the item's reference is a pattern the answer must match somewhere (re.search)."""

from __future__ import annotations

import re
from functools import lru_cache

from llmrollout.eval._types import Exchange, Score
from llmrollout.eval.scorers._text import no_reference, reference_text


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


class Regex:
    name = "regex"
    needs_reference = True

    def score(self, exchange: Exchange) -> Score:
        pattern = reference_text(exchange.reference)
        if pattern is None:
            return Score("error", None, no_reference(self.name))
        try:
            compiled = _compiled(pattern)
        except re.error as error:
            return Score("error", None, f"bad pattern {pattern[:80]!r}: {error}")
        matched = compiled.search(exchange.response) is not None
        return Score.of(1.0 if matched else 0.0, matched, "" if matched else f"no match for {pattern[:80]!r}")
