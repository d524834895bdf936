"""Pure statistics and decisions: observations in, verdicts out. No I/O, no kopf, no asyncio."""

from llmrollout.analysis.observations import Histogram, VariantWindow, Window
from llmrollout.analysis.quantiles import histogram_quantile, quantile_exceeds_finite_buckets
from llmrollout.analysis.results import (
    COST_PER_REQUEST,
    ERROR_RATE,
    FEEDBACK_MAX_DOWN,
    LATENCY_P95,
    QUALITY_MAX_DROP,
    QUALITY_MIN_SCORE,
    TTFT_P95,
    SLOResult,
    custom_slo_name,
    results_from_status,
    results_to_status,
)
from llmrollout.analysis.sequential import (
    SequentialConfig,
    SequentialEvaluation,
    SequentialState,
    evaluate_sequential,
    load_state,
    rollback_test_count,
)
from llmrollout.analysis.threshold import evaluate_threshold, evaluate_variant
from llmrollout.analysis.verdict import Verdict, worst

__all__ = [
    "COST_PER_REQUEST",
    "ERROR_RATE",
    "FEEDBACK_MAX_DOWN",
    "LATENCY_P95",
    "QUALITY_MAX_DROP",
    "QUALITY_MIN_SCORE",
    "TTFT_P95",
    "Histogram",
    "SLOResult",
    "SequentialConfig",
    "SequentialEvaluation",
    "SequentialState",
    "VariantWindow",
    "Verdict",
    "Window",
    "custom_slo_name",
    "evaluate_sequential",
    "evaluate_threshold",
    "evaluate_variant",
    "histogram_quantile",
    "load_state",
    "quantile_exceeds_finite_buckets",
    "results_from_status",
    "results_to_status",
    "rollback_test_count",
    "worst",
]
