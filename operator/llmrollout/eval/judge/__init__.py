"""`llmrollout judge`: the online evaluator that scores sampled production exchanges for Prometheus."""

from llmrollout.eval.judge.service import JudgeService, JudgeSettings

__all__ = ["JudgeService", "JudgeSettings"]
