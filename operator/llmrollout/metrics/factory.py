"""The one place that knows every metric provider and preset: spec in, provider out."""

from __future__ import annotations

import httpx

from llmrollout.api.spec import Metrics
from llmrollout.metrics.base import MetricProvider, UnknownMetricsProviderError
from llmrollout.metrics.presets import PRESETS, Preset
from llmrollout.metrics.prometheus import PrometheusProvider


def preset_named(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownMetricsProviderError(
            f"unknown metrics preset {name!r}; known: {', '.join(sorted(PRESETS))}"
        ) from None


def provider_for(metrics: Metrics, client: httpx.Client, *, namespace: str) -> MetricProvider:
    """The provider for `spec.metrics`; `namespace` (the LLMDeployment's) fills {{namespace}}.

    The caller owns `client` (timeouts, TLS, auth) and closes it.
    """
    if metrics.prometheus is not None:
        return PrometheusProvider(
            client,
            metrics.prometheus.address,
            preset_named(metrics.preset),
            namespace=namespace,
            variant_label=metrics.variant_label,
            labels=metrics.labels,
        )
    raise UnknownMetricsProviderError(
        "spec.metrics names no provider this operator knows (known: prometheus)"
    )
