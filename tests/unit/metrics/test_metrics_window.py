"""Exact window increases and field readings, by tables: the arithmetic between Prometheus and a Window."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest

from llmrollout.analysis.observations import Histogram
from llmrollout.metrics.promql import Buckets, Count, Matcher, Metric, Source, Term, count, names
from llmrollout.metrics.window import (
    BadResultError,
    SeriesData,
    SeriesKey,
    increase,
    matches,
    merge,
    newborn_targets,
    parse_baselines,
    parse_samples,
    read_field,
    series_key,
    settle_newborns,
)

INF = math.inf


@pytest.mark.parametrize(
    ("baseline", "samples", "expected"),
    [
        (10.0, [], 0.0),  # no sample in the window: nothing happened in it
        (10.0, [(1, 10.0)], 0.0),
        (10.0, [(1, 13.0)], 3.0),  # one sample is enough: a window shorter than a scrape still counts
        (10.0, [(1, 12.0), (2, 15.0)], 5.0),
        (None, [(1, 2.0), (2, 5.0)], 5.0),  # created in the window: counted from 0
        (None, [(1, 0.0)], 0.0),
        (10.0, [(1, 12.0), (2, 3.0), (3, 5.0)], 7.0),  # restart: 10->12 (+2), 0->3 (+3), 3->5 (+2)
        (10.0, [(1, 4.0)], 4.0),  # restart before the first sample in the window
        (5.5, [(1, 6.25)], 0.75),
    ],
)
def test_increase(baseline: float | None, samples: list[tuple[float, float]], expected: float) -> None:
    assert increase(baseline, samples) == pytest.approx(expected)


@pytest.mark.parametrize(("scrape", "window"), [(15.0, 30.0), (60.0, 7.0), (1.0, 0.4), (15.0, 15.0)])
@pytest.mark.parametrize("restarts", [False, True])
def test_consecutive_windows_telescope_whatever_their_length_against_the_scrapes(
    scrape: float, window: float, restarts: bool
) -> None:
    """The windows' increases add up to the whole range's, with no sample lost or counted twice."""
    rng = random.Random(f"{scrape}/{window}/{restarts}")
    truth, value, samples = 0.0, 0.0, []
    for i in range(200):
        step = rng.randint(0, 5)
        # A restart drops to 0 before counting on; a value at or above the last scrape would hide it.
        value = step + 1 if restarts and value > 6 and rng.random() < 0.05 else value + step
        truth += step + (1 if value == step + 1 and i and samples[-1][1] > value else 0)
        samples.append((i * scrape + 0.5, value))
    whole = increase(None, samples)
    if not restarts:
        assert whole == truth
    edges = [k * window for k in range(int(samples[-1][0] / window) + 2)]
    total = 0.0
    for start, end in itertools.pairwise(edges):
        before = [v for t, v in samples if t <= start]
        inside = [(t, v) for t, v in samples if start < t <= end]
        total += increase(before[-1] if before else None, inside)
    assert total == pytest.approx(whole)


@pytest.mark.parametrize(
    ("labels", "matcher", "expected"),
    [
        ({"status": "503"}, Matcher("status", "=~", "5.."), True),
        ({"status": "5xx"}, Matcher("status", "=~", "5.."), True),
        ({"status": "1503"}, Matcher("status", "=~", "5.."), False),  # anchored, as in PromQL
        ({}, Matcher("error_type", "!=", ""), False),  # a missing label is ""
        ({"error_type": "timeout"}, Matcher("error_type", "!=", ""), True),
        ({"finished_reason": "abort"}, Matcher("finished_reason", "!~", "abort|error"), False),
        ({"finished_reason": "stop"}, Matcher("finished_reason", "!~", "abort|error"), True),
        ({"result": "pass"}, Matcher("result", "=", "pass"), True),
    ],
)
def test_matches(labels: dict[str, str], matcher: Matcher, expected: bool) -> None:
    assert matches(labels, matcher) is expected


def test_series_key_ignores_the_name_and_spelling_of_numbers() -> None:
    assert series_key({"__name__": "vllm:x", "le": "1", "a": "b"}) == series_key(
        {"__name__": "vllm_x", "a": "b", "le": "1.0"}
    )
    assert series_key({"le": "+Inf"}) == series_key({"le": "+inf"})
    assert series_key({"a": "1"}) != series_key({"a": "1.0"})  # only le and quantile are numbers


def vector(*items: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {"resultType": "vector", "result": [{"metric": m, "value": [100.0, v]} for m, v in items]}


def matrix(*items: tuple[dict[str, str], list[tuple[float, str]]]) -> dict[str, Any]:
    return {
        "resultType": "matrix",
        "result": [{"metric": m, "values": [[t, v] for t, v in values]} for m, values in items],
    }


def test_parse_and_merge_two_names_of_one_series() -> None:
    series: dict[SeriesKey, SeriesData] = {}
    colon = {"__name__": "vllm:request_success_total", "model_name": "m"}
    underscore = {**colon, "__name__": "vllm_request_success_total"}
    # The scrape switched from the colon name to the escaped one inside the window.
    merge(
        series,
        "vllm:request_success_total",
        parse_baselines(vector((colon, "10"))),
        parse_samples(matrix((colon, [(100.0, "10"), (110.0, "12")]))),
        start=100.0,
    )
    merge(
        series,
        "vllm_request_success_total",
        parse_baselines(vector()),
        parse_samples(matrix((underscore, [(120.0, "15")]))),
        start=100.0,
    )
    (only,) = series.values()
    assert only.baseline == 10.0
    assert only.samples == [(110.0, 12.0), (120.0, 15.0)]  # the sample at the start belongs before
    assert only.names == {"vllm:request_success_total", "vllm_request_success_total"}
    assert increase(only.baseline, only.samples) == 5.0


@pytest.mark.parametrize(
    ("data", "parse", "message"),
    [
        (vector(({}, "NaN")), parse_baselines, "NaN"),
        (matrix(({}, [(1.0, "x")])), parse_samples, "malformed"),
        (vector(), parse_samples, "matrix"),
        (matrix(), parse_baselines, "vector"),
        ({"resultType": "vector", "result": [{"value": [1, "1"]}]}, parse_baselines, "malformed series"),
    ],
)
def test_unusable_answers(data: dict[str, Any], parse: Any, message: str) -> None:
    with pytest.raises(BadResultError, match=message):
        parse(data)


# --- fields from series ---------------------------------------------------------------------------


def s(labels: dict[str, str], baseline: float | None, *values: float, name: str = "m") -> SeriesData:
    return SeriesData(labels, baseline, [(float(i + 1), v) for i, v in enumerate(values)], {name})


def fetcher(table: dict[str, list[SeriesData]]) -> Any:
    def fetch(source: Source) -> dict[SeriesKey, SeriesData]:
        found = [x for n in source.metric.names for x in table.get(n, [])]
        return {series_key(x.labels): x for x in found}

    return fetch


def describe(source: Source) -> str:
    return source.describe((Matcher("variant", "=", "v2"),))


ERRORS = count("req", Matcher("error_type", "!=", ""), zero_when="metric")
REQUESTS = count("req")
HTTP_ERRORS = count("http_requests_total", Matcher("status", "=~", "5.."), zero_when="metric")
FAILOVER = Term(
    (Source(names("fail")), Source(names("http_requests_total"), (Matcher("status", "=~", "5.."),))),
    zero_when="metric",
)


@pytest.mark.parametrize(
    ("spec", "table", "value", "missing"),
    [
        (REQUESTS, {"req": [s({}, 5, 9)]}, 4.0, None),
        (REQUESTS, {}, None, 'req{variant="v2"}'),
        # Errors: counted where the error series exist; zero where only the success series do...
        (ERRORS, {"req": [s({}, 5, 9), s({"error_type": "timeout"}, 1, 3)]}, 2.0, None),
        (ERRORS, {"req": [s({}, 5, 9)]}, 0.0, None),
        # ...and missing, never zero, where the variant has no series of that metric at all.
        (ERRORS, {}, None, 'req{variant="v2",error_type!=""}'),
        # vLLM with model_name: the HTTP series carry no model_name, so nothing matches the variant.
        (HTTP_ERRORS, {}, None, 'http_requests_total{variant="v2",status=~"5.."}'),
        (HTTP_ERRORS, {"http_requests_total": [s({"status": "200"}, 0, 8)]}, 0.0, None),
        (HTTP_ERRORS, {"http_requests_total": [s({"status": "503"}, None, 2)]}, 2.0, None),
        # The first present source wins; the later one is not read.
        (FAILOVER, {"fail": [s({}, 1, 4)], "http_requests_total": [s({"status": "503"}, 0, 9)]}, 3.0, None),
        (FAILOVER, {"http_requests_total": [s({"status": "503"}, 0, 9)]}, 9.0, None),
        (FAILOVER, {}, None, 'fail{variant="v2"} or http_requests_total{variant="v2",status=~"5.."}'),
        (Term((Source(names("x")),), zero_when="always"), {}, 0.0, None),
        (count("x", Matcher("a", "=", "b")), {"x": [s({"a": "c"}, 0, 1)]}, None, 'x{variant="v2",a="b"}'),
        (Count((REQUESTS, count("other"))), {"req": [s({}, 0, 2)]}, None, 'other{variant="v2"}'),
        (
            Count((REQUESTS, Term((Source(names("other")),), optional=True))),
            {"req": [s({}, 0, 2)]},
            2.0,
            None,
        ),
        (
            Count((REQUESTS, HTTP_ERRORS)),
            {"req": [s({}, 0, 2)], "http_requests_total": [s({"status": "500"}, 0, 1)]},
            3.0,
            None,
        ),
    ],
)
def test_counts_read_zero_only_where_a_series_says_so(
    spec: Term | Count, table: dict[str, list[SeriesData]], value: float | None, missing: str | None
) -> None:
    reading = read_field(spec, fetcher(table), describe)
    assert (reading.value, reading.missing) == (value, missing)


def test_a_source_that_requires_a_label_is_absent_without_it() -> None:
    litellm = Term(
        (
            Source(names("total"), (Matcher("status_code", "=~", "5..|408"),), requires="status_code"),
            Source(names("failed"), (Matcher("exception_status", "=~", "5..|408"),)),
        ),
        zero_when="metric",
    )
    new = {"total": [s({"status_code": "200"}, 0, 9), s({"status_code": "504"}, 0, 2)]}
    old = {"total": [s({}, 0, 9)], "failed": [s({"exception_status": "429"}, 0, 4)]}
    assert read_field(litellm, fetcher(new), describe).value == 2.0
    assert read_field(litellm, fetcher(old), describe).value == 0.0  # 429s are the client's doing
    assert read_field(litellm, fetcher({"total": [s({}, 0, 9)]}), describe).missing == (
        'total{variant="v2",status_code=~"5..|408"} or failed{variant="v2",exception_status=~"5..|408"}'
    )


def bucket(le: str, baseline: float | None, *values: float, name: str = "h_bucket") -> SeriesData:
    return s({"le": le}, baseline, *values, name=name)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            {"h_bucket": [bucket("0.5", 10, 12), bucket("1", 20, 25), bucket("+Inf", 30, 36)]},
            ((0.5, 2.0), (1.0, 5.0), (INF, 6.0)),
        ),
        # Two pods, one created in the window; per-le sums.
        (
            {
                "h_bucket": [
                    bucket("1", 0, 1),
                    bucket("+Inf", 0, 2),
                    SeriesData({"le": "1", "pod": "b"}, None, [(1.0, 3.0)], {"h_bucket"}),
                    SeriesData({"le": "+Inf", "pod": "b"}, None, [(1.0, 4.0)], {"h_bucket"}),
                ]
            },
            ((1.0, 4.0), (INF, 6.0)),
        ),
        # The second source (client-side TTFT) where the first has no series.
        (
            {"c_bucket": [bucket("1", 0, 1, name="c_bucket"), bucket("+Inf", 0, 1, name="c_bucket")]},
            ((1.0, 1.0), (INF, 1.0)),
        ),
    ],
)
def test_buckets(table: dict[str, list[SeriesData]], expected: tuple[tuple[float, float], ...]) -> None:
    spec = Buckets((Source(names("h_bucket")), Source(names("c_bucket"))))
    reading = read_field(spec, fetcher(table), describe)
    assert reading.value == Histogram(expected)
    assert reading.missing is None


def test_buckets_missing_and_malformed() -> None:
    spec = Buckets((Source(Metric(("h_bucket",))),))
    assert read_field(spec, fetcher({}), describe).missing == 'h_bucket{variant="v2"}'
    with pytest.raises(BadResultError, match=r"\+Inf"):
        read_field(spec, fetcher({"h_bucket": [bucket("1", 0, 1)]}), describe)
    with pytest.raises(BadResultError, match="le"):
        read_field(spec, fetcher({"h_bucket": [s({}, 0, 1, name="h_bucket")]}), describe)


def test_found_names_the_metric_names_read() -> None:
    tokens = count(names("usage_sum", "usage_token_sum"), Matcher("type", "=", "output"))
    table = {"usage_token_sum": [s({"type": "output"}, 0, 40, name="usage_token_sum")]}
    reading = read_field(tokens, fetcher(table), describe)
    assert (reading.value, reading.found) == (40.0, "usage_token_sum")


@pytest.mark.parametrize(
    ("baseline", "samples", "known", "expected"),
    [
        (None, [(1, 3.0), (2, 5.0)], True, 5.0),  # born on a target scraped before: from 0
        (None, [(1, 3000.0), (2, 3005.0)], False, 5.0),  # a new target's history is not this window's
        (None, [(1, 3000.0)], False, 0.0),
        (10.0, [(1, 12.0)], False, 2.0),  # a baseline is a baseline, whatever the target
        (None, [], False, 0.0),
    ],
)
def test_settle_newborns(
    baseline: float | None, samples: list[tuple[float, float]], known: bool, expected: float
) -> None:
    series = SeriesData({"job": "j", "instance": "i:80"}, baseline, list(samples), {"m"})
    assert newborn_targets([series]) == ({("j", "i:80")} if baseline is None and samples else set())
    settle_newborns([series], {("j", "i:80")} if known else {("j", "other:80")})
    assert increase(series.baseline, series.samples) == expected
