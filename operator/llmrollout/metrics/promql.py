"""PromQL text from data: escaping, selectors, window durations, preset queries and SLO templates.

Pure functions only, so everything that ends up in a query can be checked by tables without a server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from llmrollout.metrics.base import TemplateError

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
MatchOp = Literal["=", "!=", "=~", "!~"]

# PromQL string escapes follow Go's; anything not listed goes out as \xHH so that no raw control
# character (a newline ends a string with an error, others confuse logs) reaches the parser.
_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\a": "\\a", "\b": "\\b"}
_NAMED_ESCAPES |= {"\f": "\\f", "\v": "\\v"}


def escape_string(value: str, quote: str = '"') -> str:
    """The body of a PromQL string literal opened with `quote` (" or ') that reads back as `value`."""
    if quote not in ('"', "'"):
        raise ValueError(f"PromQL strings that allow escapes are quoted with \" or ', not {quote!r}")
    out = []
    for ch in value:
        if ch in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[ch])
        elif ch == quote:
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def duration(seconds: float) -> str:
    """A PromQL duration for a window length: whole seconds as `60s`, else milliseconds (`1500ms`)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a window must last a positive, finite time, not {seconds!r} s")
    millis = round(seconds * 1000)
    if millis < 1:
        raise ValueError(f"a window must last at least 1ms, not {seconds!r} s")
    # Prometheus 2.x does not parse fractional durations such as 1.5s.
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


@dataclass(frozen=True)
class Matcher:
    label: str
    op: MatchOp
    value: str

    def render(self) -> str:
        if not LABEL_NAME.match(self.label):
            raise ValueError(f"{self.label!r} is not a Prometheus label name")
        return f'{self.label}{self.op}"{escape_string(self.value)}"'


_REGEX_SPECIAL = set("\\.+*?()|[]{}^$")


def regex_literal(value: str) -> str:
    """A regular expression (RE2, as Prometheus uses) matching exactly `value`."""
    return "".join("\\" + ch if ch in _REGEX_SPECIAL else ch for ch in value)


def selector(metric: str, matchers: Iterable[Matcher]) -> str:
    """`metric{matchers}`: one metric name's series (without a range)."""
    if not METRIC_NAME.match(metric):
        raise ValueError(f"{metric!r} is not a Prometheus metric name")
    return f"{metric}{{{','.join(m.render() for m in matchers)}}}"


def baseline_query(metric: str, matchers: Iterable[Matcher], lookback_seconds: float) -> str:
    """Each series' last value at or before the evaluation time (the window's start).

    One metric name per query: last_over_time drops the name, and two names with the same labels
    would collide.
    """
    return f"last_over_time({selector(metric, matchers)}[{duration(lookback_seconds)}])"


def samples_query(metric: str, matchers: Iterable[Matcher], window_seconds: float) -> str:
    """Every raw sample of each series in the range that ends at the evaluation time (the window's end)."""
    return f"{selector(metric, matchers)}[{duration(window_seconds)}]"


def targets_query(variant_matchers: Iterable[Matcher], range_seconds: float) -> str:
    """The (job, instance) pairs whose OTel resource carries the variant (target_info, one per target)."""
    return (
        f"group by (job, instance) "
        f"(last_over_time({selector('target_info', variant_matchers)}[{duration(range_seconds)}]))"
    )


def scraped_targets_query(targets: Iterable[tuple[str, str]], lookback_seconds: float) -> str:
    """Which of the (job, instance) `targets` Prometheus scraped within the look-back (their `up`)."""
    pairs = sorted(set(targets))
    jobs = "|".join(sorted({regex_literal(j) for j, _ in pairs}))
    instances = "|".join(sorted({regex_literal(i) for _, i in pairs}))
    matchers = (Matcher("job", "=~", jobs), Matcher("instance", "=~", instances))
    return (
        f"group by (job, instance) (last_over_time({selector('up', matchers)}[{duration(lookback_seconds)}]))"
    )


@dataclass(frozen=True)
class Metric:
    """One counter (or histogram part) under each name exporters give it.

    Names are alternatives for the same series: vLLM's `vllm:x` arrives as `vllm_x` when the scrape
    negotiates OpenMetrics with underscore escaping, so a series seen under both names is one series.
    """

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        for name in self.names:
            if not METRIC_NAME.match(name):
                raise ValueError(f"{name!r} is not a Prometheus metric name")

    def describe(self, matchers: Iterable[Matcher]) -> str:
        return " or ".join(selector(name, matchers) for name in self.names)


@dataclass(frozen=True)
class Source:
    """The series of `metric` (for the variant) that also match `where`, applied to the fetched series."""

    metric: Metric
    where: tuple[Matcher, ...] = ()
    # The source counts as present only where some series carries this label (older exporter
    # versions lack it, and `where` on a missing label would read as a silent zero).
    requires: str | None = None

    def describe(self, matchers: Iterable[Matcher]) -> str:
        return self.metric.describe((*matchers, *self.where))


# When no series matches a term's `where`, the count is:
#   "series": missing (nothing says the event could have been counted);
#   "metric": zero when the metric has series for the variant (an error series appears with the first
#             error, so "none yet" beside the variant's other series of that metric means zero);
#   "always": zero, for counts the preset declares structurally present.
ZeroWhen = Literal["series", "metric", "always"]


@dataclass(frozen=True)
class Term:
    """A count: the increase of the first source (in order) that has series for the variant."""

    sources: tuple[Source, ...]
    zero_when: ZeroWhen = "series"
    # An optional term that is missing adds nothing to its Count instead of making it missing.
    optional: bool = False


@dataclass(frozen=True)
class Count:
    """A count over the window: the sum of its terms."""

    terms: tuple[Term, ...]


@dataclass(frozen=True)
class Buckets:
    """A classic histogram's cumulative `_bucket` series, summed per `le`, from the first present source."""

    sources: tuple[Source, ...]


def names(*alternatives: str) -> Metric:
    return Metric(alternatives)


def count(
    metric: str | Metric, *where: Matcher, zero_when: ZeroWhen = "series", optional: bool = False
) -> Term:
    """Shorthand for presets: a term with one source."""
    source = Source(Metric((metric,)) if isinstance(metric, str) else metric, where)
    return Term((source,), zero_when, optional)


def variant_matchers(variant_label: str, variant: str, labels: Mapping[str, str]) -> tuple[Matcher, ...]:
    """The matchers every query of one variant carries: its variant label, then the spec's extra labels."""
    if variant_label in labels:
        raise ValueError(f"metrics.labels must not set the variant label {variant_label!r}")
    return (Matcher(variant_label, "=", variant), *(Matcher(k, "=", v) for k, v in sorted(labels.items())))


# --- custom SLO templates -------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{\{(variant|namespace|interval)\}\}")
_CODE, _COMMENT = "code", "comment"


def render_template(template: str, *, variant: str, namespace: str, interval: str) -> str:
    """Substitutes {{variant}}, {{namespace}} and {{interval}} in one pass over the template.

    {{variant}} and {{namespace}} are only accepted inside a "..." or '...' string literal, where
    escaping makes any value (quotes, backslashes, newlines, braces) stay inside the literal; outside
    one no escaping could keep a hostile value from becoming PromQL, so that is a TemplateError. A
    value is never scanned again, so a variant named "{{namespace}}" stays literal text.
    """
    values = {"variant": variant, "namespace": namespace}
    out: list[str] = []
    context = _CODE  # or the quote character of the string literal we are in, or _COMMENT
    escaped = False
    i = 0
    while i < len(template):
        match = PLACEHOLDER.match(template, i)
        if match:
            name = match.group(1)
            if escaped:
                raise TemplateError(f"{{{{{name}}}}} must not follow a backslash")
            if name == "interval":
                # Our own duration text ([0-9]+(ms|s)) is inert in every context.
                out.append(interval)
            elif context in ('"', "'"):
                out.append(escape_string(values[name], context))
            elif context == _COMMENT:
                # Inert unless it carries a newline, which the string escaping removes.
                out.append(escape_string(values[name]))
            elif context == "`":
                raise TemplateError(
                    f"{{{{{name}}}}} inside a `raw string` cannot be escaped; use a double-quoted string"
                )
            else:
                raise TemplateError(
                    f"{{{{{name}}}}} must be inside a double-quoted string, "
                    f'e.g. {{label="{{{{{name}}}}}"}}, so that its value cannot change the query'
                )
            i = match.end()
            continue
        ch = template[i]
        out.append(ch)
        i += 1
        if context == _CODE:
            if ch in "\"'`":
                context = ch
            elif ch == "#":
                context = _COMMENT
        elif context == _COMMENT:
            if ch == "\n":
                context = _CODE
        elif escaped:
            escaped = False
        elif ch == "\\" and context != "`":
            escaped = True
        elif ch == context:
            context = _CODE
    return "".join(out)


def check_template(template: str) -> None:
    """Raises TemplateError when `template` uses a placeholder where it cannot be made safe."""
    render_template(template, variant="v", namespace="ns", interval="1m")
