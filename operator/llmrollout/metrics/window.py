"""Exact window increases from raw samples: pure functions from Prometheus answers to a VariantWindow.

`increase(x[w])` needs two samples inside the range and extrapolates to its edges, so with 15-60 s
scrapes a 30 s window is often empty, and when it is not its count is scaled by up to range/sample-span
(about 4/3 at 15 s). Instead each series' increase is its value at the window's end minus its last value
at or before the window's start, with counter resets added back. Consecutive windows then telescope:
every scraped increment lands in exactly one window, however short the window is against the scrape
interval, and nothing is invented at the edges.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmrollout.analysis.observations import Histogram
from llmrollout.metrics.base import MetricsError
from llmrollout.metrics.promql import Buckets, Count, Matcher, Source, Term

# Labels that hold numbers as text: one bucket printed "1" by one client and "1.0" by another (or by
# the same client after an upgrade) is still the same bucket.
_NUMERIC_LABELS = ("le", "quantile")

SeriesKey = tuple[tuple[str, str], ...]


class BadResultError(MetricsError):
    """One query's answer cannot be used (rejected by Prometheus, NaN, wrong shape)."""


@dataclass
class SeriesData:
    """One series (its labels without the metric name): the value before the window and the samples in it."""

    labels: dict[str, str]
    baseline: float | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)
    names: set[str] = field(default_factory=set)


# --- parsing answers ------------------------------------------------------------------------------


def _number(text: Any) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError) as err:
        raise BadResultError(f"malformed sample value {text!r}") from err
    if math.isnan(value):
        raise BadResultError("the value is NaN")
    if math.isinf(value):
        raise BadResultError(f"the value is {value}")
    return value


def series_key(labels: Mapping[str, str]) -> SeriesKey:
    """Identity of a series across its names: labels without __name__, numeric labels normalised."""
    # One list comprehension: this runs for every series of every answer, a batch's hottest line.
    return tuple(
        sorted(
            [
                (k, _normal_number(v) if k in _NUMERIC_LABELS else v)
                for k, v in labels.items()
                if k != "__name__"
            ]
        )
    )


# A histogram's few bucket bounds recur in every series of every answer: each is parsed once.
@functools.lru_cache(maxsize=1024)
def _normal_number(value: str) -> str:
    try:
        return repr(float(value))
    except ValueError:
        return value


def _result_list(data: Mapping[str, Any], kind: str) -> list[Any]:
    if data.get("resultType") != kind:
        raise BadResultError(f"expected a {kind} result, got {data.get('resultType')!r}")
    result = data.get("result")
    if not isinstance(result, list):
        raise BadResultError(f"malformed {kind} {result!r}")
    return result


def _labels(item: Any) -> dict[str, str]:
    metric = item.get("metric") if isinstance(item, dict) else None
    if not isinstance(metric, dict):
        raise BadResultError(f"malformed series {item!r}")
    return {str(k): str(v) for k, v in metric.items()}


def parse_baselines(data: Mapping[str, Any]) -> dict[SeriesKey, tuple[dict[str, str], float]]:
    """A vector from last_over_time at the window's start: each series' last value."""
    out: dict[SeriesKey, tuple[dict[str, str], float]] = {}
    for item in _result_list(data, "vector"):
        labels = _labels(item)
        value = item.get("value")
        if not isinstance(value, list) or len(value) != 2:
            raise BadResultError(f"malformed sample {value!r}")
        out[series_key(labels)] = (labels, _number(value[1]))
    return out


def parse_samples(
    data: Mapping[str, Any],
) -> dict[SeriesKey, tuple[dict[str, str], list[tuple[float, float]]]]:
    """A matrix from a range selector at the window's end: each series' raw samples, oldest first."""
    out: dict[SeriesKey, tuple[dict[str, str], list[tuple[float, float]]]] = {}
    for item in _result_list(data, "matrix"):
        labels = _labels(item)
        values = item.get("values")
        if not isinstance(values, list):
            raise BadResultError(f"malformed samples {values!r}")
        samples = []
        for pair in values:
            if not isinstance(pair, list) or len(pair) != 2:
                raise BadResultError(f"malformed sample {pair!r}")
            samples.append((_number(pair[0]), _number(pair[1])))
        out[series_key(labels)] = (labels, sorted(samples))
    return out


def merge(
    into: dict[SeriesKey, SeriesData],
    name: str,
    baselines: Mapping[SeriesKey, tuple[dict[str, str], float]],
    samples: Mapping[SeriesKey, tuple[dict[str, str], list[tuple[float, float]]]],
    start: float,
) -> None:
    """Adds one metric name's answers to the series of its Metric (which may have several names).

    Samples at or before `start` belong to the previous window (Prometheus 2.x range selectors include
    their left edge, 3.x do not); they are dropped here so that the boundary is the same in both.
    """
    for key, (labels, value) in baselines.items():
        series = into.setdefault(key, SeriesData(labels))
        series.names.add(name)
        # The same series under two names: the later value is the one the counter had reached.
        series.baseline = value if series.baseline is None else max(series.baseline, value)
    for key, (labels, values) in samples.items():
        series = into.setdefault(key, SeriesData(labels))
        series.names.add(name)
        series.samples = sorted([*series.samples, *((t, v) for t, v in values if t > start)])


Target = tuple[str, str]


def target_of(labels: Mapping[str, str]) -> Target:
    """The scrape target a series came from: its (job, instance)."""
    return labels.get("job", ""), labels.get("instance", "")


def newborn_targets(series: Iterable[SeriesData]) -> set[Target]:
    """The targets of series that first appear inside the window."""
    return {target_of(s.labels) for s in series if s.baseline is None and s.samples}


def settle_newborns(series: Iterable[SeriesData], known: set[Target]) -> None:
    """Decides where a series that first appears inside the window starts counting.

    On a target Prometheus scraped before the window, the process created the series inside it (an
    error counter's first error, an OTel instrument's first use): it counts from 0. On a target new to
    Prometheus (a scrape config just added, a Prometheus that lost its data) the counter may carry a
    long history, and counting it from 0 would put all of it in one window: its first sample is its
    baseline instead, as increase() takes it.
    """
    for s in series:
        if s.baseline is None and s.samples and target_of(s.labels) not in known:
            s.baseline = s.samples[0][1]
            s.samples = s.samples[1:]


# --- pure arithmetic ------------------------------------------------------------------------------


def increase(baseline: float | None, samples: Sequence[tuple[float, float]]) -> float:
    """A counter's exact increase over the window from its last value before it and its samples in it.

    A series with no value before the window was created in it and counts from 0 (error counters
    appear with their first error; OTel creates series on first use). A drop is a restart from 0, so
    the new value is all increase, as Prometheus's own reset handling assumes.
    """
    previous = 0.0 if baseline is None else baseline
    total = 0.0
    for _, value in samples:
        total += value - previous if value >= previous else value
        previous = value
    return total


def matches(labels: Mapping[str, str], matcher: Matcher) -> bool:
    """PromQL matcher semantics: a missing label is "", regular expressions are fully anchored."""
    value = labels.get(matcher.label, "")
    if matcher.op == "=":
        return value == matcher.value
    if matcher.op == "!=":
        return value != matcher.value
    found = re.fullmatch(matcher.value, value) is not None
    return found if matcher.op == "=~" else not found


def _selected(series: Iterable[SeriesData], where: Sequence[Matcher]) -> list[SeriesData]:
    return [s for s in series if all(matches(s.labels, m) for m in where)]


# --- fields ---------------------------------------------------------------------------------------

# The provider's fetcher: every series of one Metric for the variant (empty when none).
Fetch = Callable[[Source], Mapping[SeriesKey, SeriesData]]


@dataclass(frozen=True)
class Reading:
    """One field's value, or why it has none (`missing` names the series looked for)."""

    value: Any = None
    missing: str | None = None
    found: str | None = None


def _first_present(sources: Sequence[Source], fetch: Fetch) -> tuple[Source, list[SeriesData]] | None:
    for source in sources:
        series = list(fetch(source).values())
        if source.requires is not None:
            series = [s for s in series if source.requires in s.labels]
        if series:
            return source, series
    return None


def _found(series: Iterable[SeriesData]) -> str:
    return ", ".join(sorted({name for s in series for name in s.names}))


def read_term(term: Term, fetch: Fetch, describe: Callable[[Source], str]) -> Reading:
    present = _first_present(term.sources, fetch)
    looked_for = " or ".join(describe(s) for s in term.sources)
    if present is None:
        return Reading(0.0) if term.zero_when == "always" else Reading(missing=looked_for)
    source, series = present
    selected = _selected(series, source.where)
    if not selected:
        if term.zero_when == "series":
            return Reading(missing=describe(source))
        return Reading(0.0, found=_found(series))
    return Reading(sum(increase(s.baseline, s.samples) for s in selected), found=_found(selected))


def read_count(count: Count, fetch: Fetch, describe: Callable[[Source], str]) -> Reading:
    total, found = 0.0, []
    for term in count.terms:
        reading = read_term(term, fetch, describe)
        if reading.value is None:
            if term.optional:
                continue
            return reading
        total += reading.value
        if reading.found:
            found.append(reading.found)
    return Reading(total, found=", ".join(found) or None)


def read_buckets(buckets: Buckets, fetch: Fetch, describe: Callable[[Source], str]) -> Reading:
    looked_for = " or ".join(describe(s) for s in buckets.sources)
    present = _first_present(buckets.sources, fetch)
    if present is None:
        return Reading(missing=looked_for)
    source, series = present
    selected = _selected(series, source.where)
    if not selected:
        return Reading(missing=describe(source))
    per_le: dict[float, float] = {}
    for s in selected:
        le = s.labels.get("le")
        try:
            upper = float(le) if le is not None else math.nan
        except ValueError:
            upper = math.nan
        if math.isnan(upper):
            raise BadResultError(f"bucket without a numeric le label: {s.labels!r}")
        per_le[upper] = per_le.get(upper, 0.0) + increase(s.baseline, s.samples)
    ordered = sorted(per_le.items())
    if ordered[-1][0] != math.inf:
        raise BadResultError("no le=+Inf bucket, so the total count is unknown")
    # Series with different bucket layouts summed per le can make a cumulative count dip; counts
    # cannot fall, so carry the running maximum (as histogram_quantile does).
    cumulative, highest = [], 0.0
    for upper, value in ordered:
        highest = max(highest, value)
        cumulative.append((upper, highest))
    return Reading(Histogram(tuple(cumulative)), found=_found(selected))


def read_field(spec: Term | Count | Buckets, fetch: Fetch, describe: Callable[[Source], str]) -> Reading:
    if isinstance(spec, Buckets):
        return read_buckets(spec, fetch, describe)
    if isinstance(spec, Term):
        return read_term(spec, fetch, describe)
    return read_count(spec, fetch, describe)
