"""Reads a Window from the Prometheus HTTP API (/api/v1/query), one instant query per field."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from llmrollout.analysis.observations import Histogram, VariantWindow, Window
from llmrollout.api.spec import CustomSLO
from llmrollout.metrics.base import MetricsError, MetricsUnavailableError
from llmrollout.metrics.presets import Preset
from llmrollout.metrics.promql import duration, render_template, variant_matchers

SCALAR_FIELDS = (
    "requests",
    "errors",
    "eval_score_sum",
    "eval_score_count",
    "eval_passed",
    "eval_failed",
    "input_tokens",
    "output_tokens",
)
HISTOGRAM_FIELDS = ("ttft", "latency")
CUSTOM_PREFIX = "custom:"


class BadResultError(MetricsError):
    """One query's answer cannot be used (rejected by Prometheus, NaN, wrong shape)."""


# --- pure: queries --------------------------------------------------------------------------------


def render_queries(
    preset: Preset,
    variant: str,
    window_seconds: float,
    *,
    variant_label: str = "variant",
    labels: Mapping[str, str] | None = None,
    namespace: str,
    custom: Sequence[CustomSLO] = (),
) -> dict[str, str]:
    """Every query one variant's window needs, keyed by VariantWindow field (custom: "custom:<name>").

    Fields the preset has no series for are left out. A custom template that cannot be rendered safely
    raises TemplateError.
    """
    window = duration(window_seconds)
    common = variant_matchers(variant_label, variant, labels or {})
    queries: dict[str, str] = {}
    for name in (*SCALAR_FIELDS[:2], *HISTOGRAM_FIELDS, *SCALAR_FIELDS[2:]):
        spec = getattr(preset, name)
        if spec is not None:
            queries[name] = spec.render(common, window)
    for slo in custom:
        queries[CUSTOM_PREFIX + slo.name] = render_template(
            slo.query, variant=variant, namespace=namespace, interval=window
        )
    return queries


# --- pure: answers --------------------------------------------------------------------------------


def _sample_value(sample: Any) -> float:
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError, KeyError) as err:
        raise BadResultError(f"malformed sample {sample!r}") from err
    if math.isnan(value):
        raise BadResultError("the value is NaN")
    if math.isinf(value):
        raise BadResultError(f"the value is {value}")
    return value


def _result(data: Mapping[str, Any], allowed: tuple[str, ...]) -> tuple[str, Any]:
    result_type, result = data.get("resultType"), data.get("result")
    if result_type not in allowed:
        raise BadResultError(f"expected a {' or '.join(allowed)} result, got {result_type!r}")
    return result_type, result


def parse_value(data: Mapping[str, Any]) -> float | None:
    """The single number in a query's `data`; None when no series matched (never 0)."""
    result_type, result = _result(data, ("vector", "scalar"))
    if result_type == "scalar":
        return _sample_value(result)
    if not isinstance(result, list):
        raise BadResultError(f"malformed vector {result!r}")
    if not result:
        return None
    if len(result) > 1:
        raise BadResultError(f"{len(result)} series returned; the query must aggregate to one, e.g. sum(...)")
    return _sample_value(result[0].get("value"))


def parse_histogram(data: Mapping[str, Any]) -> Histogram | None:
    """Cumulative buckets from a `sum by (le)` vector; None when no bucket series matched."""
    _, result = _result(data, ("vector",))
    if not isinstance(result, list):
        raise BadResultError(f"malformed vector {result!r}")
    if not result:
        return None
    buckets: dict[float, float] = {}
    for sample in result:
        le = (sample.get("metric") or {}).get("le")
        try:
            upper = float(le) if isinstance(le, str) else math.nan
        except ValueError as err:
            raise BadResultError(f"bucket without a numeric le label: {sample.get('metric')!r}") from err
        if math.isnan(upper):
            raise BadResultError(f"bucket without a numeric le label: {sample.get('metric')!r}")
        if upper in buckets:
            raise BadResultError(f"two buckets with le={le!r}")
        buckets[upper] = _sample_value(sample.get("value"))
    ordered = sorted(buckets.items())
    if ordered[-1][0] != math.inf:
        raise BadResultError("no le=+Inf bucket, so the total count is unknown")
    # increase() extrapolates each bucket separately, which can leave a bucket a hair below the one
    # before it; cumulative counts cannot fall, so carry the running maximum (as histogram_quantile does).
    cumulative: list[tuple[float, float]] = []
    highest = 0.0
    for upper, value in ordered:
        highest = max(highest, value)
        cumulative.append((upper, highest))
    return Histogram(tuple(cumulative))


def _redacted(address: str) -> str:
    """The address without user:password, for messages that end up in status and Events."""
    # A regex rather than urlsplit: it must not fail on the malformed addresses it helps report.
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", address)


# --- the provider ---------------------------------------------------------------------------------


class PrometheusProvider:
    """Reads each variant's window with instant queries evaluated at the window's end."""

    def __init__(
        self,
        client: httpx.Client,
        address: str,
        preset: Preset,
        *,
        namespace: str,
        variant_label: str = "variant",
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._url = address.rstrip("/") + "/api/v1/query"
        self._address = _redacted(address)
        self.preset = preset
        self.namespace = namespace
        self.variant_label = variant_label
        self.labels = dict(labels or {})
        # Fail at construction, not at the first read, when the spec's labels cannot form a selector.
        for matcher in variant_matchers(variant_label, "probe", self.labels):
            matcher.render()

    def queries(
        self, variant: str, start: float, end: float, custom: Sequence[CustomSLO] = ()
    ) -> dict[str, str]:
        """The PromQL `read` sends for one variant, for explaining a decision."""
        return render_queries(
            self.preset,
            variant,
            end - start,
            variant_label=self.variant_label,
            labels=self.labels,
            namespace=self.namespace,
            custom=custom,
        )

    def read(
        self, variants: Sequence[str], start: float, end: float, custom: Sequence[CustomSLO] = ()
    ) -> Window:
        duration(end - start)  # a bad window is the caller's bug: raise before any query
        problems: list[str] = []
        windows: dict[str, VariantWindow] = {}
        for variant in variants:
            values: dict[str, Any] = {}
            custom_values: dict[str, float | None] = {slo.name: None for slo in custom}
            for name, query in self._variant_queries(variant, start, end, custom, problems).items():
                try:
                    data = self._query(query, end)
                    if name in HISTOGRAM_FIELDS:
                        values[name] = parse_histogram(data)
                    elif name.startswith(CUSTOM_PREFIX):
                        custom_values[name.removeprefix(CUSTOM_PREFIX)] = parse_value(data)
                    else:
                        values[name] = parse_value(data)
                except BadResultError as err:
                    problems.append(f"{variant} {name}: {err} (query: {query})")
            windows[variant] = VariantWindow(variant=variant, custom=custom_values, **values)
        return Window(start=start, end=end, variants=windows, problems=tuple(problems))

    def _variant_queries(
        self, variant: str, start: float, end: float, custom: Sequence[CustomSLO], problems: list[str]
    ) -> dict[str, str]:
        queries = self.queries(variant, start, end)
        window = duration(end - start)
        for slo in custom:
            try:
                queries[CUSTOM_PREFIX + slo.name] = render_template(
                    slo.query, variant=variant, namespace=self.namespace, interval=window
                )
            except MetricsError as err:
                problems.append(f"{variant} {CUSTOM_PREFIX}{slo.name}: {err}")
        return queries

    def _query(self, query: str, at: float) -> dict[str, Any]:
        try:
            response = self._client.get(self._url, params={"query": query, "time": f"{at:.3f}"})
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            raise MetricsUnavailableError(
                f"Prometheus at {self._address} is unreachable: {type(err).__name__}: {err}"
            ) from err
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise MetricsUnavailableError(
                f"{self._address} did not answer like the Prometheus HTTP API "
                f"(HTTP {response.status_code} from {response.request.url.path})"
            )
        if body["status"] == "success" and response.status_code == 200:
            data = body.get("data")
            if not isinstance(data, dict):
                raise MetricsUnavailableError(f"Prometheus at {self._address} answered without data")
            return data
        message = f"{body.get('errorType', 'error')}: {body.get('error', 'no message')}"
        # 400 and 422 are this query's fault (syntax, execution); anything else (503 timeouts and
        # overload, auth, proxies) says Prometheus cannot answer now, whatever we ask.
        if response.status_code in (400, 422):
            raise BadResultError(f"Prometheus rejected the query: {message}")
        raise MetricsUnavailableError(
            f"Prometheus at {self._address} failed (HTTP {response.status_code}): {message}"
        )
