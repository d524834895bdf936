"""Metric providers: read per-variant aggregates over an analysis window (see base.MetricProvider)."""

from llmrollout.metrics.base import (
    MetricProvider,
    MetricsError,
    MetricsUnavailableError,
    TemplateError,
    UnknownMetricsProviderError,
)
from llmrollout.metrics.client import Credentials
from llmrollout.metrics.factory import preset_named, provider_for, variant_selector
from llmrollout.metrics.presets import PRESETS, Preset
from llmrollout.metrics.promql import check_template

__all__ = [
    "PRESETS",
    "Credentials",
    "MetricProvider",
    "MetricsError",
    "MetricsUnavailableError",
    "Preset",
    "TemplateError",
    "UnknownMetricsProviderError",
    "check_template",
    "preset_named",
    "provider_for",
    "variant_selector",
]
