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


@dataclass(frozen=True)
class Series:
    """The series of one metric name that also match `matchers` (on top of the variant's own)."""

    metric: str
    matchers: tuple[Matcher, ...] = ()

    def selector(self, common: Iterable[Matcher], window: str) -> str:
        if not METRIC_NAME.match(self.metric):
            raise ValueError(f"{self.metric!r} is not a Prometheus metric name")
        body = ",".join(m.render() for m in (*common, *self.matchers))
        return f"{self.metric}{{{body}}}[{window}]"


@dataclass(frozen=True)
class Term:
    """The window's increase of `series`, summed over every matching series.

    `zero_with` names series whose presence turns a missing `series` into 0: error and pass/fail
    counters only appear after the first error or failure, and "no errors yet" must not read as
    "no data", while a variant with no series at all must still read as missing.
    """

    series: Series
    zero_with: Series | None = None


@dataclass(frozen=True)
class Count:
    """A count over the window: the sum of its terms."""

    terms: tuple[Term, ...]

    def render(self, common: Iterable[Matcher], window: str) -> str:
        common = tuple(common)
        parts = []
        for term in self.terms:
            text = f"sum(increase({term.series.selector(common, window)}))"
            if term.zero_with is not None:
                fallback = f"0 * sum(increase({term.zero_with.selector(common, window)}))"
                text = f"({text} or {fallback})"
            parts.append(text)
        return " + ".join(parts)


@dataclass(frozen=True)
class Buckets:
    """A classic histogram's cumulative buckets over the window, summed per `le`."""

    series: Series

    def render(self, common: Iterable[Matcher], window: str) -> str:
        return f"sum by (le) (increase({self.series.selector(common, window)}))"


def count(metric: str, *matchers: Matcher, zero_with: str | None = None) -> Count:
    """Shorthand for presets: a one-term count."""
    return Count((Term(Series(metric, matchers), None if zero_with is None else Series(zero_with)),))


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
