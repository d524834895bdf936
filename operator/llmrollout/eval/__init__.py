"""Golden-set and online evaluation: an OpenAI-compatible client, scorers, the engine and reports.

The public surface is here; the modules behind it are private to the package.
"""

from llmrollout.eval._openai import EndpointError, Meter, Metered, OpenAIClient, Pricing, RetryPolicy
from llmrollout.eval._types import Exchange, Message, Score, Usage
from llmrollout.eval.engine import Budget, Evaluator, ItemResult, PairedRun, RunResult, Target
from llmrollout.eval.golden import GoldenItem, GoldenSetError, load_golden_set
from llmrollout.eval.scorers.base import Scorer, UnknownScorerError
from llmrollout.eval.scorers.factory import SCORERS, ScorerConfig, scorer_for

__all__ = [
    "SCORERS",
    "Budget",
    "EndpointError",
    "Evaluator",
    "Exchange",
    "GoldenItem",
    "GoldenSetError",
    "ItemResult",
    "Message",
    "Meter",
    "Metered",
    "OpenAIClient",
    "PairedRun",
    "Pricing",
    "RetryPolicy",
    "RunResult",
    "Score",
    "Scorer",
    "ScorerConfig",
    "Target",
    "UnknownScorerError",
    "Usage",
    "load_golden_set",
    "scorer_for",
]
