"""The one place that knows every metric provider and preset: spec in, provider out."""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from llmrollout.api.spec import Metrics
from llmrollout.metrics.base import MetricProvider, UnknownMetricsProviderError
from llmrollout.metrics.client import Credentials
from llmrollout.metrics.presets import PRESETS, Preset
from llmrollout.metrics.prometheus import PrometheusProvider
from llmrollout.metrics.promql import Matcher, variant_matchers

# A scrape's samples carry the scrape's start time but are stored when it completes; reading each
# window this much in the past keeps its newest samples from arriving after it was read.
INGESTION_DELAY_SECONDS = 1.0


def preset_named(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownMetricsProviderError(
            f"unknown metrics preset {name!r}; known: {', '.join(sorted(PRESETS))}"
        ) from None


def provider_for(
    metrics: Metrics,
    client: httpx.Client,
    *,
    namespace: str,
    credentials: Credentials | None = None,
    query_offset: float = INGESTION_DELAY_SECONDS,
    fields: Iterable[str] | None = None,
) -> MetricProvider:
    """The provider for `spec.metrics`; `namespace` (the LLMDeployment's) fills {{namespace}}.
    `query_offset`: how far in the past windows are read (0 for a check of which series exist now).
    `fields`: the VariantWindow fields its windows hold (None: every field; see window_fields).

    The caller owns `client` (timeouts, TLS) and closes it, and reads `credentials` from the Secret
    that spec.metrics.prometheus.auth names (this layer does no Kubernetes I/O).
    """
    if metrics.prometheus is not None:
        return PrometheusProvider(
            client,
            metrics.prometheus.address,
            preset_named(metrics.preset),
            namespace=namespace,
            variant_label=metrics.effective_variant_label,
            variant_from=metrics.variant_from,
            labels=metrics.labels,
            scrape_interval=metrics.prometheus.scrape_interval.total_seconds(),
            query_offset=query_offset,
            credentials=credentials,
            fields=fields,
        )
    raise UnknownMetricsProviderError(
        "spec.metrics names no provider this operator knows (known: prometheus)"
    )


def variant_selector(metrics: Metrics, variant: str) -> str:
    """How `variant`'s series are selected, in words for reports: `{label="v",...}`, or the
    target_info join when the variant is an OpenTelemetry resource attribute."""
    label = metrics.effective_variant_label
    if metrics.variant_from == "resource":
        extra = ",".join(Matcher(k, "=", v).render() for k, v in sorted(metrics.labels.items()))
        joined = ",".join(m.render() for m in variant_matchers(label, variant, metrics.labels))
        return f"{{{extra}}} on(job, instance) target_info{{{joined}}}"
    return "{" + ",".join(m.render() for m in variant_matchers(label, variant, metrics.labels)) + "}"
