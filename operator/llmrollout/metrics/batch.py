"""Batched window reads: one query per metric name for a whole group of LLMDeployments.

LLMDeployments on the same Prometheus, with the same preset, variant label and `metrics.labels` keys,
read the same metric names with selectors that differ only in label values. A batch asks once, with
a selector whose regular expressions cover every member's values, e.g.
`{variant=~"v1|v2",namespace=~"team\\-a|team\\-b"}` (every value escaped as a regex literal), and
splits the answer by each series' exact label values. The union over-selects (team-a's v2 when only
team-b has a v2, or series of a label-value combination nobody asked for); the split only ever gives
a member the series whose labels equal its own values, which is exactly what the member's own
equality selector would have matched, so a batched Window is the Window a read of its own would give.

The reads stay the exact ones of window.py: raw samples and the last value before each window, so
members whose windows differ (a window starts at the deployment's lastAnalysisAt) still share
queries: the samples query spans the union of their windows and each member keeps the samples inside
its own, and the value before each member's window comes from two shared queries at the earliest
start (see shared_baselines), asked again at a member's own start only where those two cannot tell.

Answers are capped in size (client.MAX_RESPONSE_BYTES): a group is read in chunks of at most
`max_members` members, and a chunk whose answer is too large is split in two and read again.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from llmrollout.analysis.observations import Window
from llmrollout.api.spec import CustomSLO
from llmrollout.metrics.base import MetricsError, MetricsUnavailableError
from llmrollout.metrics.client import ResponseTooLargeError, short
from llmrollout.metrics.presets import Preset
from llmrollout.metrics.prometheus import FIELDS, PrometheusProvider, VariantReader, lookback_seconds
from llmrollout.metrics.promql import (
    Buckets,
    Count,
    Matcher,
    Source,
    Term,
    baseline_query,
    duration,
    regex_literal,
    samples_query,
    scraped_targets_query,
)
from llmrollout.metrics.window import (
    BadResultError,
    SeriesData,
    SeriesKey,
    Target,
    merge,
    parse_baselines,
    parse_samples,
    target_of,
)

MAX_MEMBERS_PER_QUERY = 64
CONCURRENCY_PER_PROMETHEUS = 4
# Members whose windows together span more than this are read by separate queries (a window alone
# may be longer: it is then its own chunk).
MAX_SPAN_SECONDS = 900.0

# (variant, the values of the group's label keys in key order): whose series a series is.
Owner = tuple[str, tuple[str, ...]]
Baselines = dict[SeriesKey, tuple[dict[str, str], float]]
Samples = dict[SeriesKey, tuple[dict[str, str], list[tuple[float, float]]]]


@dataclass(frozen=True)
class BatchMember:
    """One LLMDeployment's read: its provider (built from its spec), variants, window and custom SLOs."""

    provider: PrometheusProvider
    variants: tuple[str, ...]
    start: float
    end: float
    custom: tuple[CustomSLO, ...] = ()


def batch_key(provider: PrometheusProvider) -> Hashable | None:
    """What members of one batch share; None for a provider that reads alone (variants named by the
    OTel resource are joined through target_info per variant, which this batch does not do)."""
    if provider.variant_from != "label":
        return None
    api = provider.api
    # Never one query for two sets of credentials: each tenant's answer is what its own may see.
    credentials = api.credentials
    return (
        api.url,
        None if credentials is None else hashlib.sha256(credentials.authorization.encode()).hexdigest(),
        provider.preset.name,
        provider.variant_label,
        tuple(sorted(provider.labels)),
        provider.scrape_interval,
        provider.query_offset,
        api.max_response_bytes,
        api.deadline_seconds,
    )


# --- pure: selectors and the split ----------------------------------------------------------------


def union_matcher(label: str, values: Iterable[str]) -> Matcher:
    """A matcher for any of `values` exactly: `=` for one value, else an alternation of regex literals."""
    distinct = sorted(set(values))
    if len(distinct) == 1:
        return Matcher(label, "=", distinct[0])
    return Matcher(label, "=~", "|".join(regex_literal(v) for v in distinct))


def group_matchers(variant_label: str, keys: Sequence[str], owners: Iterable[Owner]) -> tuple[Matcher, ...]:
    """The selector covering every owner: one union matcher per label (a superset of the owners)."""
    wanted = list(owners)
    matchers = [union_matcher(variant_label, (variant for variant, _ in wanted))]
    for i, key in enumerate(keys):
        matchers.append(union_matcher(key, (values[i] for _, values in wanted)))
    return tuple(matchers)


def owner_of(labels: Mapping[str, str], variant_label: str, keys: Sequence[str]) -> Owner:
    """Whose series this is: its exact label values (a missing label is "", as PromQL's `=` sees it)."""
    return labels.get(variant_label, ""), tuple(labels.get(k, "") for k in keys)


def split_answer(
    data: Mapping[str, Any],
    kind: str,
    variant_label: str,
    keys: Sequence[str],
    wanted: Iterable[Owner],
) -> tuple[dict[Owner, Any], dict[Owner, BadResultError]]:
    """An answer's series per owner, for the owners in `wanted` only (the rest was over-selected by
    the union and is dropped unread). A series that cannot be parsed fails its owner's field only.

    Returns (parsed per owner, errors per owner); a malformed answer as a whole raises BadResultError.
    """
    wanted = set(wanted)
    if data.get("resultType") != kind:
        raise BadResultError(f"expected a {kind} result, got {data.get('resultType')!r}")
    result = data.get("result")
    if not isinstance(result, list):
        raise BadResultError(f"malformed {kind} {result!r}")
    parse = parse_samples if kind == "matrix" else parse_baselines
    # Each owner's series, in the answer's order, parsed together: what one answer of its own holds.
    items: dict[Owner, list[Any]] = {}
    for item in result:
        metric = item.get("metric") if isinstance(item, dict) else None
        if not isinstance(metric, dict):
            raise BadResultError(f"malformed series {item!r}")
        owner = owner_of(metric, variant_label, keys)
        if not all(isinstance(v, str) for v in owner[1]) or not isinstance(owner[0], str):
            # Prometheus's label values are strings; anything else is compared as parsing sees it.
            owner = owner_of({str(k): str(v) for k, v in metric.items()}, variant_label, keys)
        if owner in wanted:
            items.setdefault(owner, []).append(item)
    parsed: dict[Owner, Any] = {}
    errors: dict[Owner, BadResultError] = {}
    for owner, series in items.items():
        try:
            parsed[owner] = parse({"resultType": kind, "result": series})
        except BadResultError as err:
            errors[owner] = err
    return parsed, errors


def within(samples: Samples, start: float, end: float) -> Samples:
    """The series with samples in (start, end], with only those samples: what a range selector of
    the window itself returns (a sample at `start` belongs to the previous window, see window.merge)."""
    out: Samples = {}
    for key, (labels, values) in samples.items():
        kept = [(t, v) for t, v in values if start < t <= end]
        if kept:
            out[key] = (labels, kept)
    return out


def shared_baselines(
    start: float, first: float, wide: Baselines, narrow: Baselines, samples: Samples
) -> tuple[Baselines, set[SeriesKey]]:
    """Each series' last value at or before `start`, within the look-back L, as last_over_time(x[L])
    at `start` gives it, from answers shared with earlier starts (`first`, the chunk's earliest):

    - `wide`: last_over_time(x[L]) at `first`; exact for a member whose window starts at `first`;
    - `narrow`: last_over_time(x[L - spread]) at `first`, spread = latest start - `first`: a value
      it holds is at most L old at every start of the chunk;
    - `samples`: the raw samples after `first` (the union range), whose last one at or before
      `start` is the value there when there is one.

    Returns the values and the series that only `wide` holds: their last sample is before `first`
    and may be more than L before `start`, which only a query at `start` can tell.
    """
    if start <= first:
        return dict(wide), set()
    out: Baselines = {}
    ambiguous: set[SeriesKey] = set()
    for key in wide.keys() | narrow.keys() | samples.keys():
        labels, values = samples.get(key, ({}, []))
        before = [v for t, v in values if first < t <= start]
        if before:
            named = wide.get(
                key, narrow.get(key, ({k: v for k, v in labels.items() if k != "__name__"}, 0.0))
            )
            out[key] = (named[0], before[-1])
        elif key in narrow:
            out[key] = narrow[key]
        elif key in wide:
            ambiguous.add(key)
    return out, ambiguous


def first_names(preset: Preset, fields: Iterable[str] = FIELDS) -> list[str]:
    """Every metric name a read of these fields of this preset asks first (later sources only where
    these are empty)."""
    names: list[str] = []
    for name in fields:
        spec = getattr(preset, name)
        sources: list[Source] = []
        if isinstance(spec, (Term, Buckets)):
            sources = [spec.sources[0]]
        elif isinstance(spec, Count):
            sources = [term.sources[0] for term in spec.terms]
        for source in sources:
            names += [n for n in source.metric.names if n not in names]
    return names


# --- reading ----------------------------------------------------------------------------------------


@dataclass
class _Name:
    """One metric name's answers for a chunk: samples over the union of windows, values before each
    distinct window start, and per-owner parse errors."""

    samples: dict[Owner, Samples] = field(default_factory=dict)
    wide: dict[Owner, Baselines] = field(default_factory=dict)
    narrow: dict[Owner, Baselines] = field(default_factory=dict)
    # Values before one start, asked at that start: every start when the starts are an hour or
    # more apart, else only where shared_baselines cannot tell.
    baselines: dict[float, dict[Owner, Baselines]] = field(default_factory=dict)
    errors: dict[Owner, BadResultError] = field(default_factory=dict)


class _Chunk:
    """The members read together by one set of queries."""

    def __init__(self, members: Sequence[BatchMember], pool: ThreadPoolExecutor) -> None:
        self.members = list(members)
        self.pool = pool
        first = members[0].provider
        self.api = first.api
        self.variant_label = first.variant_label
        self.keys = tuple(sorted(first.labels))
        self.lookback = lookback_seconds(first.scrape_interval)
        self.times = [m.provider.query_times(m.start, m.end) for m in members]
        self.owners = {
            (variant, tuple(m.provider.labels.get(k, "") for k in self.keys))
            for m in members
            for variant in m.variants
        }
        self.matchers = group_matchers(self.variant_label, self.keys, self.owners)
        self.first_start = min(t[0] for t in self.times)
        self.last_end = max(t[1] for t in self.times)
        self.starts = sorted({t[0] for t in self.times})
        self.spread = self.starts[-1] - self.starts[0]
        # Starts within the look-back share two baseline queries; else each start asks its own.
        self.shared = len(self.starts) > 1 and self.spread < self.lookback - 0.001
        self.deadline = self.api.deadline()
        self._names: dict[str, _Name | MetricsError] = {}
        self._asked: dict[float, set[Target]] = {}
        self._scraped: dict[float, set[Target]] = {}
        # Set when Prometheus could not answer one of the chunk's own queries (not a member's custom one).
        self.failed: MetricsUnavailableError | None = None

    def owner(self, position: int, variant: str) -> Owner:
        labels = self.members[position].provider.labels
        return variant, tuple(labels.get(k, "") for k in self.keys)

    def fetch(self, names: Iterable[str]) -> None:
        """Asks for every name not asked yet, all queries at once (within the pool's bound)."""
        todo = [n for n in dict.fromkeys(names) if n not in self._names]
        if not todo:
            return
        span = self.last_end - self.first_start
        queries: list[tuple[str, str, float, str]] = []
        for name in todo:
            queries.append((name, "matrix", self.last_end, samples_query(name, self.matchers, span)))
            if self.shared:
                wide = baseline_query(name, self.matchers, self.lookback)
                narrow = baseline_query(name, self.matchers, self.lookback - self.spread)
                queries.append((name, "wide", self.first_start, wide))
                queries.append((name, "narrow", self.first_start, narrow))
            else:
                for start in self.starts:
                    queries.append(
                        (name, "vector", start, baseline_query(name, self.matchers, self.lookback))
                    )
        answers = list(self.pool.map(self._ask, queries))
        if self.failed is not None:
            raise self.failed
        for name in todo:
            self._names[name] = _Name()
        for (name, kind, at, query), answer in zip(queries, answers, strict=True):
            entry = self._names[name]
            if isinstance(entry, MetricsError):
                continue
            if isinstance(answer, MetricsError):
                self._names[name] = type(answer)(f"{answer} (query: {short(query)})")
                continue
            shape = "matrix" if kind == "matrix" else "vector"
            try:
                parsed, errors = split_answer(answer, shape, self.variant_label, self.keys, self.owners)
            except BadResultError as err:
                self._names[name] = BadResultError(f"{err} (query: {short(query)})")
                continue
            for owner, problem in errors.items():
                entry.errors.setdefault(owner, BadResultError(f"{problem} (query: {short(query)})"))
            if kind == "matrix":
                entry.samples = parsed
            elif kind == "wide":
                entry.wide = parsed
            elif kind == "narrow":
                entry.narrow = parsed
            else:
                entry.baselines[at] = parsed

    def _ask(self, query: tuple[str, str, float, str]) -> dict[str, Any] | MetricsError:
        """The answer, or the error as a value. Once Prometheus could not answer one of the chunk's
        queries, the rest are not asked: each would fail alike (a 60 MB answer read up to the cap,
        a drip waited on until the deadline), and the chunk fails as a whole anyway."""
        if self.failed is not None:
            return self.failed
        try:
            return self.api.query(query[3], query[2], self.deadline)
        except MetricsError as err:
            # Kept without its traceback: the errors of a chunk's queries live together until the
            # chunk is read, and their frames would keep each query's answer (up to the cap) alive.
            err = err.with_traceback(None)
            if isinstance(err, MetricsUnavailableError) and self.failed is None:
                self.failed = err
            return err

    def series(self, position: int, variant: str, names: Sequence[str]) -> dict[SeriesKey, SeriesData]:
        """The member's series of one Metric, as its own read would have merged them."""
        self.fetch(names)
        start, end = self.times[position]
        owner = self.owner(position, variant)
        series: dict[SeriesKey, SeriesData] = {}
        for name in names:
            entry = self._names[name]
            if isinstance(entry, MetricsError):
                raise entry
            if owner in entry.errors:
                raise entry.errors[owner]
            samples = entry.samples.get(owner, {})
            if self.shared:
                baselines, unsure = shared_baselines(
                    start, self.first_start, entry.wide.get(owner, {}), entry.narrow.get(owner, {}), samples
                )
                if unsure:
                    exact = self._baselines_at(name, entry, start).get(owner, {})
                    if owner in entry.errors:
                        raise entry.errors[owner]
                    baselines.update({key: exact[key] for key in unsure if key in exact})
            else:
                baselines = entry.baselines.get(start, {}).get(owner, {})
            merge(series, name, baselines, within(samples, start, end), start)
        return series

    def _baselines_at(self, name: str, entry: _Name, start: float) -> dict[Owner, Baselines]:
        """Every owner's values before `start`, asked at `start` (once per name and start)."""
        if start not in entry.baselines:
            query = baseline_query(name, self.matchers, self.lookback)
            answer = self._ask((name, "vector", start, query))
            if isinstance(answer, MetricsUnavailableError):
                raise answer
            if isinstance(answer, MetricsError):
                raise type(answer)(f"{answer} (query: {short(query)})")
            parsed, errors = split_answer(answer, "vector", self.variant_label, self.keys, self.owners)
            for owner, problem in errors.items():
                entry.errors.setdefault(owner, BadResultError(f"{problem} (query: {short(query)})"))
            entry.baselines[start] = parsed
        return entry.baselines[start]

    def scraped_before(self, start: float, targets: set[Target]) -> set[Target]:
        """Those of `targets` scraped before `start` (asked once per target and start, for the chunk)."""
        asked = self._asked.setdefault(start, set())
        scraped = self._scraped.setdefault(start, set())
        unknown = targets - asked
        if unknown:
            query = scraped_targets_query(unknown, self.lookback)
            answer = self._ask(("up", "vector", start, query))
            if isinstance(answer, MetricsUnavailableError):
                raise answer
            if isinstance(answer, MetricsError):
                raise type(answer)(f"{answer} (query: {short(query)})")
            for item in answer.get("result") or []:
                scraped.add(target_of(item.get("metric") or {}))
            asked |= unknown
        return scraped & targets


class _BatchedVariantReader(VariantReader):
    """A variant's fields from the chunk's shared answers instead of queries of its own."""

    def __init__(self, chunk: _Chunk, position: int, variant: str) -> None:
        member = chunk.members[position]
        start, end = chunk.times[position]
        super().__init__(member.provider, variant, start, end, chunk.deadline)
        self.chunk = chunk
        self.position = position

    def _series(self, source: Source, matchers: tuple[Matcher, ...]) -> dict[SeriesKey, SeriesData]:
        return self.chunk.series(self.position, self.variant, source.metric.names)

    def _scraped_before(self, targets: set[Target]) -> set[Target]:
        return self.chunk.scraped_before(self.start, targets)


Result = Window | MetricsError


def read_batch(
    members: Sequence[BatchMember],
    *,
    max_members: int = MAX_MEMBERS_PER_QUERY,
    concurrency: int = CONCURRENCY_PER_PROMETHEUS,
) -> list[Result]:
    """Each member's Window (or the MetricsError its own read would have raised), in order.

    Every member must have the same batch_key (ValueError otherwise: the caller's bug).
    """
    if not members:
        return []
    keys = {batch_key(m.provider) for m in members}
    if None in keys or len(keys) != 1:
        raise ValueError("a batch needs members with one batch key (see batch_key)")
    results: list[Result | None] = [None] * len(members)
    for i, m in enumerate(members):
        try:
            duration(m.end - m.start)
            duration(m.provider.query_times(m.start, m.end)[1] - m.provider.query_times(m.start, m.end)[0])
        except ValueError as err:  # the caller's bug, but only this member's window is unknown
            results[i] = MetricsError(f"no window to read: {err}")
    # Members with the same window start together, so that a chunk asks few distinct baselines.
    valid = [i for i, r in enumerate(results) if r is None]
    order = sorted(valid, key=lambda i: (members[i].start, members[i].end, i))
    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="metrics-batch") as pool:
        for positions in chunks([(members[i].start, members[i].end) for i in order], max_members):
            chosen = [order[p] for p in positions]
            for position, result in zip(chosen, _read_chunk([members[p] for p in chosen], pool), strict=True):
                results[position] = result
    return [r for r in results if r is not None]


def chunks(
    windows: Sequence[tuple[float, float]], max_members: int, max_span: float = MAX_SPAN_SECONDS
) -> list[list[int]]:
    """Consecutive runs of `windows` (sorted by start) read by one set of queries: at most
    `max_members`, and spanning at most `max_span` seconds from the first start to the last end, so
    that one long window (a look resumed after a pause) does not make every member's answer as long."""
    out: list[list[int]] = []
    first, last_end = 0.0, 0.0
    for i, (start, end) in enumerate(windows):
        span = max(last_end, end) - first
        if out and len(out[-1]) < max(1, max_members) and span <= max_span:
            out[-1].append(i)
            last_end = max(last_end, end)
        else:
            out.append([i])
            first, last_end = start, end
    return out


def _read_chunk(members: Sequence[BatchMember], pool: ThreadPoolExecutor) -> list[Result]:
    chunk = _Chunk(members, pool)
    results: list[Result] = []
    try:
        wanted = {name for member in members for name in member.provider.fields}
        chunk.fetch(first_names(members[0].provider.preset, [f for f in FIELDS if f in wanted]))
        for position, member in enumerate(members):
            results.append(_read_member(chunk, position, member))
    except ResponseTooLargeError as err:
        if len(members) == 1:
            return [err]
        half = len(members) // 2
        return _read_chunk(members[:half], pool) + _read_chunk(members[half:], pool)
    except MetricsUnavailableError as err:
        # Prometheus could not answer the chunk's queries: every member of it is unavailable, as
        # each would have been on its own (members read before the failure keep their windows).
        results += [err] * (len(members) - len(results))
    return results


def _read_member(chunk: _Chunk, position: int, member: BatchMember) -> Result:
    provider = member.provider
    try:
        return provider.assemble(
            member.variants,
            member.start,
            member.end,
            member.custom,
            chunk.deadline,
            functools.partial(_BatchedVariantReader, chunk, position),
        )
    except MetricsUnavailableError as err:
        if chunk.failed is err:
            raise
        return err  # this member's own custom query: only this member's window is unknown
