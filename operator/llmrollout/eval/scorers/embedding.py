"""embeddingSimilarity: cosine similarity of the answer's and the reference's embeddings, thresholded."""

from __future__ import annotations

import numpy as np

from llmrollout.eval._openai import EndpointError, OpenAIClient
from llmrollout.eval._types import Exchange, Score
from llmrollout.eval.scorers._text import no_reference, reference_text


def cosine(a: tuple[float, ...], b: tuple[float, ...]) -> float | None:
    """None for a zero or mismatched vector: no direction, no similarity."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.size == 0:
        return None
    norms = float(np.linalg.norm(x) * np.linalg.norm(y))
    if norms == 0.0 or not np.isfinite(norms):
        return None
    return float(np.dot(x, y) / norms)


class EmbeddingSimilarity:
    name = "embeddingSimilarity"
    needs_reference = True

    def __init__(self, client: OpenAIClient, model: str, threshold: float) -> None:
        self._client = client
        self._model = model
        self.threshold = threshold

    def score(self, exchange: Exchange) -> Score:
        reference = reference_text(exchange.reference)
        if reference is None:
            return Score("error", None, no_reference(self.name))
        try:
            embedded = self._client.embed(self._model, [exchange.response, reference])
        except EndpointError as error:
            return Score("error", None, str(error))
        similarity = cosine(*embedded.vectors)
        if similarity is None:
            return Score("error", None, "embeddings have no direction or differ in size", embedded.usage)
        passed = similarity >= self.threshold
        # The score is the verdict, not the raw cosine: cosines of unrelated texts are often 0.7+, so
        # the raw value would read as quality against a minScore of 0.8.
        return Score.of(
            1.0 if passed else 0.0, passed, f"cosine {similarity:.3f} vs {self.threshold}", embedded.usage
        )
