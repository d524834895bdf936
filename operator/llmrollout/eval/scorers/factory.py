"""The one place that knows every scorer: a name and its settings in, a Scorer out."""

from __future__ import annotations

from dataclasses import dataclass

from llmrollout.eval._openai import OpenAIClient
from llmrollout.eval.scorers.base import Scorer, UnknownScorerError
from llmrollout.eval.scorers.contains import Contains
from llmrollout.eval.scorers.embedding import EmbeddingSimilarity
from llmrollout.eval.scorers.exact import ExactMatch
from llmrollout.eval.scorers.json_schema import JSONSchema
from llmrollout.eval.scorers.llm_judge import LLMJudge
from llmrollout.eval.scorers.regex import Regex

SCORERS = ("exactMatch", "contains", "regex", "jsonSchema", "embeddingSimilarity", "llmJudge")


@dataclass(frozen=True)
class ScorerConfig:
    kind: str
    judge_model: str | None = None
    rubric: str | None = None
    pass_threshold: float = 0.5
    embedding_model: str | None = None
    similarity_threshold: float = 0.85


def scorer_for(
    config: ScorerConfig, *, judge: OpenAIClient | None = None, embeddings: OpenAIClient | None = None
) -> Scorer:
    """Raises UnknownScorerError for an unknown name and ValueError when the scorer's endpoint is missing."""
    match config.kind:
        case "exactMatch":
            return ExactMatch()
        case "contains":
            return Contains()
        case "regex":
            return Regex()
        case "jsonSchema":
            return JSONSchema()
        case "embeddingSimilarity":
            if embeddings is None or not config.embedding_model:
                raise ValueError("scorer embeddingSimilarity needs an embeddings endpoint and model")
            return EmbeddingSimilarity(embeddings, config.embedding_model, config.similarity_threshold)
        case "llmJudge":
            if judge is None or not config.judge_model:
                raise ValueError("scorer llmJudge needs a judge endpoint and model")
            return LLMJudge(
                judge, config.judge_model, template=config.rubric, pass_threshold=config.pass_threshold
            )
    raise UnknownScorerError(f"unknown scorer {config.kind!r}; known: {', '.join(SCORERS)}")
