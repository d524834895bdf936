"""Reads a Window from the Prometheus HTTP API: exact counter differences per series (see window.py).

For every metric a field needs, two instant queries per metric name: each series' last value at or
before the window's start (`last_over_time(x{sel}[lookback])`) and its raw samples up to the window's
end (`x{sel}[end - start]`). Custom SLO queries are instant queries at the window's end, as written.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import httpx

from llmrollout.analysis.observations import VariantWindow, Window
from llmrollout.api.spec import CustomSLO
from llmrollout.metrics.base import MetricsError
from llmrollout.metrics.client import (
    DEADLINE_SECONDS,
    MAX_RESPONSE_BYTES,
    Credentials,
    PrometheusAPI,
    QueryRejectedError,
    short,
)
from llmrollout.metrics.presets import Preset
from llmrollout.metrics.promql import (
    Matcher,
    Source,
    baseline_query,
    duration,
    regex_literal,
    render_template,
    samples_query,
    scraped_targets_query,
    targets_query,
    variant_matchers,
)
from llmrollout.metrics.window import (
    BadResultError,
    SeriesData,
    SeriesKey,
    Target,
    merge,
    newborn_targets,
    parse_baselines,
    parse_samples,
    read_field,
    settle_newborns,
    target_of,
)

SCALAR_FIELDS = (
    "requests",
    "errors",
    "eval_score_sum",
    "eval_score_count",
    "eval_passed",
    "eval_failed",
    "input_tokens",
    "output_tokens",
    "feedback_up",
    "feedback_down",
)
HISTOGRAM_FIELDS = ("ttft", "latency", "input_tokens_per_request", "output_tokens_per_request", "eval_score")
FIELDS = (*SCALAR_FIELDS[:2], *HISTOGRAM_FIELDS, *SCALAR_FIELDS[2:])
# llmrollout's own evaluator labels its series with the variant, whatever the preset's telemetry does.
OWN_FIELDS = (
    "eval_score",
    "eval_score_sum",
    "eval_score_count",
    "eval_passed",
    "eval_failed",
    "feedback_up",
    "feedback_down",
)
CUSTOM_PREFIX = "custom:"
VariantFrom = Literal["label", "resource"]

# A series whose last sample is older than this before the window counts as created in the window.
# Generous, because a baseline lost to a scrape gap would count the counter's whole history; it costs
# Prometheus one scan per series, and returns one value per series whatever its length.
MIN_LOOKBACK_SECONDS = 3600.0
LOOKBACK_SCRAPES = 10


def lookback_seconds(scrape_interval: float) -> float:
    return max(MIN_LOOKBACK_SECONDS, LOOKBACK_SCRAPES * scrape_interval)


def _ms(t: float) -> float:
    # Both edges on the millisecond grid Prometheus stores, so that one window's end and the next
    # window's start are the same instant in both queries.
    return round(t * 1000) / 1000


class PrometheusProvider:
    """Reads each variant's window from one Prometheus, with the preset's series and labels."""

    def __init__(
        self,
        client: httpx.Client,
        address: str,
        preset: Preset,
        *,
        namespace: str,
        variant_label: str | None = None,
        variant_from: VariantFrom = "label",
        labels: Mapping[str, str] | None = None,
        scrape_interval: float = 60.0,
        query_offset: float = 0.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        deadline_seconds: float = DEADLINE_SECONDS,
        credentials: Credentials | None = None,
        fields: Iterable[str] | None = None,
    ) -> None:
        """`fields`: the VariantWindow fields to read (None: all); a window leaves the rest unread."""
        self.api = PrometheusAPI(
            client,
            address,
            max_response_bytes=max_response_bytes,
            deadline_seconds=deadline_seconds,
            credentials=credentials,
        )
        self.preset = preset
        self.namespace = namespace
        self.variant_label = variant_label or preset.variant_label
        self.variant_from = variant_from
        self.labels = dict(labels or {})
        self.scrape_interval = scrape_interval
        # Read the window as of `query_offset` seconds earlier: a scrape's samples carry its start
        # time but are stored when it ends, so the newest instant of the window may not be complete
        # yet. Both edges move, so consecutive windows still telescope.
        self.query_offset = query_offset
        wanted = FIELDS if fields is None else frozenset(fields)
        if unknown := sorted(set(wanted) - set(FIELDS)):
            raise ValueError(f"no such window fields: {', '.join(unknown)}")
        self.fields = tuple(name for name in FIELDS if name in wanted)
        if not math.isfinite(scrape_interval) or scrape_interval <= 0:
            raise ValueError(f"the scrape interval must be positive, not {scrape_interval!r}")
        # Fail at construction, not at the first read, when the spec's labels cannot form a selector.
        for matcher in variant_matchers(self.variant_label, "probe", self.labels):
            matcher.render()

    # --- what is read -----------------------------------------------------------------------------

    def label_matchers(self, variant: str) -> tuple[Matcher, ...]:
        """The variant's label and the spec's labels: what every series (or target_info) carries."""
        return variant_matchers(self.variant_label, variant, self.labels)

    def extra_matchers(self) -> tuple[Matcher, ...]:
        """Only the spec's labels: series that name the variant through target_info do not carry it."""
        return tuple(Matcher(k, "=", v) for k, v in sorted(self.labels.items()))

    def queries(self, variant: str) -> dict[str, str]:
        """The series each field reads for one variant, as PromQL selectors, for explaining a decision."""
        out: dict[str, str] = {}
        for name in FIELDS:
            spec = getattr(self.preset, name)
            if spec is None:
                continue
            matchers = self.label_matchers(variant)
            if self.variant_from == "resource" and name not in OWN_FIELDS:
                target = targets_query(matchers, lookback_seconds(self.scrape_interval))
                matchers = self.extra_matchers()
                out[name] = f"{_describe_spec(spec, matchers)} on(job, instance) of {target}"
            else:
                out[name] = _describe_spec(spec, matchers)
        return out

    # --- reading ----------------------------------------------------------------------------------

    def missing_series(self, variants: Sequence[str], now: float) -> dict[str, dict[str, str]]:
        """For a preflight: per variant, each field whose series Prometheus has not seen lately, with
        the selector looked for. A series seen within the look-back (at least an hour) is present.

        Raises MetricsUnavailableError like `read`; `read` also tells queries that Prometheus rejected.
        """
        window = self.read(variants, now - self.scrape_interval, now)
        return {variant: dict(w.missing) for variant, w in window.variants.items() if w.missing}

    def read(
        self, variants: Sequence[str], start: float, end: float, custom: Sequence[CustomSLO] = ()
    ) -> Window:
        duration(end - start)  # a bad window is the caller's bug: raise before any query
        at_start, at_end = self.query_times(start, end)
        duration(at_end - at_start)
        deadline = self.api.deadline()
        return self.assemble(
            variants,
            start,
            end,
            custom,
            deadline,
            lambda variant: VariantReader(self, variant, at_start, at_end, deadline),
        )

    def query_times(self, start: float, end: float) -> tuple[float, float]:
        """The instants the window's edges are read at (earlier by the ingestion delay, on the ms grid)."""
        return _ms(start - self.query_offset), _ms(end - self.query_offset)

    def assemble(
        self,
        variants: Sequence[str],
        start: float,
        end: float,
        custom: Sequence[CustomSLO],
        deadline: float,
        reader_for: Callable[[str], VariantReader],
    ) -> Window:
        """The window from each variant's reader (the one place a Window is put together, so that a
        batched read and a read of its own give the same Window from the same series)."""
        problems: list[str] = []
        windows: dict[str, VariantWindow] = {}
        for variant in variants:
            values, missing, found = reader_for(variant).fields(problems)
            custom_values = self._custom(variant, start, end, custom, deadline, problems)
            windows[variant] = VariantWindow(
                variant=variant, custom=custom_values, missing=missing, found=found, **values
            )
        return Window(
            start=start,
            end=end,
            variants=windows,
            problems=tuple(problems),
            scrape_interval=self.scrape_interval,
        )

    def _custom(
        self,
        variant: str,
        start: float,
        end: float,
        custom: Sequence[CustomSLO],
        deadline: float,
        problems: list[str],
    ) -> dict[str, float | None]:
        values: dict[str, float | None] = {}
        window = duration(end - start)
        for slo in custom:
            values[slo.name] = None
            try:
                query = render_template(slo.query, variant=variant, namespace=self.namespace, interval=window)
            except MetricsError as err:
                problems.append(f"{variant} {CUSTOM_PREFIX}{slo.name}: {err}")
                continue
            try:
                values[slo.name] = parse_value(self.api.query(query, _ms(end - self.query_offset), deadline))
            except (BadResultError, QueryRejectedError) as err:
                problems.append(f"{variant} {CUSTOM_PREFIX}{slo.name}: {err} (query: {short(query)})")
        return values


class VariantReader:
    """One variant's fields; fetches each metric name at most once."""

    def __init__(
        self, provider: PrometheusProvider, variant: str, start: float, end: float, deadline: float
    ) -> None:
        self.p = provider
        self.variant = variant
        self.start, self.end, self.deadline = start, end, deadline
        self.lookback = lookback_seconds(provider.scrape_interval)
        self._cache: dict[tuple[str, tuple[Matcher, ...]], dict[SeriesKey, SeriesData]] = {}
        self._targets: set[tuple[str, str]] | None = None
        self._asked: set[Target] = set()
        self._scraped: set[Target] = set()

    def fields(self, problems: list[str]) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
        values: dict[str, Any] = {}
        missing: dict[str, str] = {}
        found: dict[str, str] = {}
        for name in self.p.fields:
            spec = getattr(self.p.preset, name)
            if spec is None:
                # Named, so that an SLO needing it says why it can never be judged.
                missing[name] = f"(no {name} series in preset {self.p.preset.name})"
                continue
            by_resource = self.p.variant_from == "resource" and name not in OWN_FIELDS
            try:
                if by_resource and not self._resolve_targets():
                    missing[name] = _describe_target_info(self.p.label_matchers(self.variant))
                    continue
                matchers = self.p.extra_matchers() if by_resource else self.p.label_matchers(self.variant)
                reading = read_field(
                    spec,
                    functools.partial(self._fetch, matchers=matchers, by_resource=by_resource),
                    functools.partial(
                        _describe_source,
                        matchers=matchers,
                        join=self.p.label_matchers(self.variant) if by_resource else None,
                    ),
                )
            except (BadResultError, QueryRejectedError) as err:
                problems.append(f"{self.variant} {name}: {err}")
                continue
            values[name] = reading.value
            if reading.missing is not None:
                missing[name] = reading.missing
            if reading.found is not None:
                found[name] = reading.found
        return values, missing, found

    def _resolve_targets(self) -> set[tuple[str, str]]:
        if self._targets is None:
            query = targets_query(self.p.label_matchers(self.variant), self.end - self.start + self.lookback)
            data = self._query(query, self.end)
            targets = set()
            for item in data.get("result") or []:
                labels = item.get("metric") or {}
                targets.add((str(labels.get("job", "")), str(labels.get("instance", ""))))
            self._targets = targets
        return self._targets

    def _fetch(
        self, source: Source, matchers: tuple[Matcher, ...], by_resource: bool
    ) -> dict[SeriesKey, SeriesData]:
        if by_resource:
            targets = self._resolve_targets()
            jobs = "|".join(sorted(regex_literal(j) for j, _ in targets))
            instances = "|".join(sorted(regex_literal(i) for _, i in targets))
            matchers = (*matchers, Matcher("job", "=~", jobs), Matcher("instance", "=~", instances))
        key = ("|".join(source.metric.names), matchers)
        if key not in self._cache:
            series = self._series(source, matchers)
            if by_resource:
                # The regex matchers select the cross product of jobs and instances; keep real pairs.
                targets = self._resolve_targets()
                series = {
                    k: s
                    for k, s in series.items()
                    if (s.labels.get("job", ""), s.labels.get("instance", "")) in targets
                }
            settle_newborns(series.values(), self._scraped_before(newborn_targets(series.values())))
            self._cache[key] = series
        return self._cache[key]

    def _series(self, source: Source, matchers: tuple[Matcher, ...]) -> dict[SeriesKey, SeriesData]:
        """Every series of the source's Metric that `matchers` select, merged across its names."""
        series: dict[SeriesKey, SeriesData] = {}
        for name in source.metric.names:
            baselines = parse_baselines(
                self._query(baseline_query(name, matchers, self.lookback), self.start)
            )
            samples = parse_samples(
                self._query(samples_query(name, matchers, self.end - self.start), self.end)
            )
            merge(series, name, baselines, samples, self.start)
        return series

    def _scraped_before(self, targets: set[Target]) -> set[Target]:
        """Those of `targets` that Prometheus scraped before the window (asked once per target)."""
        unknown = targets - self._asked
        if unknown:
            data = self._query(scraped_targets_query(unknown, self.lookback), self.start)
            for item in data.get("result") or []:
                self._scraped.add(target_of(item.get("metric") or {}))
            self._asked |= unknown
        return self._scraped & targets

    def _query(self, query: str, at: float) -> dict[str, Any]:
        try:
            return self.p.api.query(query, at, self.deadline)
        except (BadResultError, QueryRejectedError) as err:
            raise type(err)(f"{err} (query: {short(query)})") from err


def _describe_source(
    source: Source, matchers: tuple[Matcher, ...], join: tuple[Matcher, ...] | None = None
) -> str:
    if join is None:
        return source.describe(matchers)
    target_info = ",".join(m.render() for m in join)
    return f"({source.describe(matchers)}) on(job, instance) target_info{{{target_info}}}"


def _describe_spec(spec: Any, matchers: tuple[Matcher, ...]) -> str:
    terms = getattr(spec, "terms", None)
    if terms is not None:
        return " + ".join(" or ".join(s.describe(matchers) for s in t.sources) for t in terms)
    return " or ".join(s.describe(matchers) for s in spec.sources)


def _describe_target_info(matchers: tuple[Matcher, ...]) -> str:
    body = ",".join(m.render() for m in matchers)
    return f"target_info{{{body}}} (the OTel resource that names the variant)"


# --- pure: custom query answers -------------------------------------------------------------------


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


def parse_value(data: Mapping[str, Any]) -> float | None:
    """The single number in a query's `data`; None when no series matched (never 0)."""
    result_type, result = data.get("resultType"), data.get("result")
    if result_type not in ("vector", "scalar"):
        raise BadResultError(f"expected a vector or scalar result, got {result_type!r}")
    if result_type == "scalar":
        return _sample_value(result)
    if not isinstance(result, list):
        raise BadResultError(f"malformed vector {result!r}")
    if not result:
        return None
    if len(result) > 1:
        raise BadResultError(f"{len(result)} series returned; the query must aggregate to one, e.g. sum(...)")
    return _sample_value(result[0].get("value"))
