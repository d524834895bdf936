"""The LLMDeployment API: spec and status models, and the CRD generated from them."""

from llmrollout.api.durations import Duration, format_duration, parse_duration
from llmrollout.api.spec import (
    Analysis,
    BackendRef,
    CostSLO,
    CustomSLO,
    EmbeddingEndpoint,
    ErrorRateSLO,
    Evaluation,
    FallbackPolicy,
    FeedbackSLO,
    GoldenSet,
    JudgeEndpoint,
    LLMDeploymentSpec,
    Metrics,
    PercentileSLO,
    Pricing,
    Prometheus,
    PrometheusAuth,
    QualitySLO,
    SecretKeyRef,
    SecretRef,
    SLOs,
    Strategy,
    Traffic,
    Variant,
)
from llmrollout.api.status import (
    MAX_HISTORY,
    Condition,
    FallbackStatus,
    HistoryEntry,
    LLMDeploymentStatus,
    Phase,
    with_condition,
)
from llmrollout.api.validation import InvalidSpecError, parse_spec

GROUP = "llmrollout.io"
VERSION = "v1alpha1"
KIND = "LLMDeployment"
PLURAL = "llmdeployments"
SHORT_NAME = "llmd"

__all__ = [
    "GROUP",
    "KIND",
    "MAX_HISTORY",
    "PLURAL",
    "SHORT_NAME",
    "VERSION",
    "Analysis",
    "BackendRef",
    "Condition",
    "CostSLO",
    "CustomSLO",
    "Duration",
    "EmbeddingEndpoint",
    "ErrorRateSLO",
    "Evaluation",
    "FallbackPolicy",
    "FallbackStatus",
    "FeedbackSLO",
    "GoldenSet",
    "HistoryEntry",
    "InvalidSpecError",
    "JudgeEndpoint",
    "LLMDeploymentSpec",
    "LLMDeploymentStatus",
    "Metrics",
    "PercentileSLO",
    "Phase",
    "Pricing",
    "Prometheus",
    "PrometheusAuth",
    "QualitySLO",
    "SLOs",
    "SecretKeyRef",
    "SecretRef",
    "Strategy",
    "Traffic",
    "Variant",
    "format_duration",
    "parse_duration",
    "parse_spec",
    "with_condition",
]
