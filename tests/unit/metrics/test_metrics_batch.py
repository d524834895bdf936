"""Batched reads by tables: the union selector, the split by exact label values, and Windows equal to
each member's own read (the in-memory TSDB of test_metrics_responses behind httpx.MockTransport)."""

from __future__ import annotations

import gc
import itertools
import re
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmrollout.metrics import Credentials, MetricsUnavailableError
from llmrollout.metrics.batch import (
    BatchMember,
    Owner,
    batch_key,
    chunks,
    first_names,
    group_matchers,
    owner_of,
    read_batch,
    shared_baselines,
    split_answer,
    union_matcher,
    within,
)
from llmrollout.metrics.presets import PRESETS
from llmrollout.metrics.prometheus import PrometheusProvider
from llmrollout.metrics.promql import Matcher
from llmrollout.metrics.window import matches
from tests.unit.metrics.test_metrics_responses import TSDB, Answer, mock_prometheus

# Label values a tenant could choose that are regex or PromQL syntax: each must match only itself.
HOSTILE = [
    "a",
    "a|b",
    "b",
    ".*",
    "a.b",
    "axb",
    "",
    'x"y',
    "x'y",
    "back\\slash",
    "(a)",
    "[ab]",
    "a+",
    "aa",
    "^a$",
    "{1}",
    "ns-1",
    "ns_1",
    "é",
]


@pytest.mark.parametrize("values", [[v] for v in HOSTILE] + [HOSTILE, ["a", "a|b"], [".*", ""], ["a+", "aa"]])
def test_a_union_matcher_matches_exactly_its_values(values: list[str]) -> None:
    matcher = union_matcher("l", values)
    probes = set(HOSTILE) | {v + "x" for v in HOSTILE} | {"x" + v for v in HOSTILE} | {"ab", "a\nb"}
    for probe in probes:
        assert matches({"l": probe}, matcher) == (probe in values), (probe, matcher)
    matcher.render()  # a valid selector, whatever the values


def test_one_value_is_an_equality_matcher() -> None:
    assert union_matcher("namespace", ["team-a", "team-a"]) == Matcher("namespace", "=", "team-a")
    assert union_matcher("variant", ["v2", "v1"]) == Matcher("variant", "=~", "v1|v2")


def test_group_matchers_cover_every_owner() -> None:
    owners: list[Owner] = [("v1", ("a", "x")), ("v2", ("b", "y"))]
    matchers = group_matchers("variant", ["app", "ns"], owners)
    assert [m.label for m in matchers] == ["variant", "app", "ns"]
    for variant, (app, ns) in itertools.product(("v1", "v2"), itertools.product(("a", "b"), ("x", "y"))):
        labels = {"variant": variant, "app": app[0], "ns": ns[0]}
        assert all(matches(labels, m) for m in matchers)  # the union over-selects the cross product


@pytest.mark.parametrize(
    ("labels", "owner"),
    [
        ({"variant": "v1", "app": "a"}, ("v1", ("a",))),
        ({"variant": "v1"}, ("v1", ("",))),  # a missing label is "", as PromQL's = sees it
        ({"app": "a"}, ("", ("a",))),
        ({"variant": "v1", "app": "a", "le": "1"}, ("v1", ("a",))),
    ],
)
def test_owner_is_the_exact_label_values(labels: dict[str, str], owner: Owner) -> None:
    assert owner_of(labels, "variant", ["app"]) == owner


def _matrix(*series: tuple[dict[str, str], list[tuple[float, str]]]) -> dict[str, Any]:
    return {
        "resultType": "matrix",
        "result": [{"metric": m, "values": [[t, v] for t, v in values]} for m, values in series],
    }


def test_the_split_gives_each_owner_only_series_with_its_exact_values() -> None:
    # Every combination of hostile values is in the answer, as a union selector would over-select.
    values = ["a", "a|b", ".*", 'x"y', ""]
    series = [
        ({"__name__": "m", "variant": variant, "app": app, "ns": ns}, [(1.0, "1")])
        for variant, app, ns in itertools.product(["v1", "v1|v2"], values, values)
    ]
    wanted: list[Owner] = [("v1", ("a", ".*")), ("v1|v2", ('x"y', "")), ("v1", ("a|b", "a"))]
    parsed, errors = split_answer(_matrix(*series), "matrix", "variant", ["app", "ns"], wanted)
    assert not errors
    assert set(parsed) == set(wanted)
    for owner, got in parsed.items():
        for labels, _ in got.values():
            assert owner_of(labels, "variant", ["app", "ns"]) == owner
        assert len(got) == 1


def test_a_bad_series_fails_only_its_owner() -> None:
    answer = _matrix(
        ({"variant": "v1", "app": "a", "le": "1"}, [(1.0, "1")]),
        ({"variant": "v1", "app": "b", "le": "1"}, [(1.0, "NaN")]),
        ({"variant": "v1", "app": "b", "le": "2"}, [(1.0, "2")]),
    )
    parsed, errors = split_answer(answer, "matrix", "variant", ["app"], [("v1", ("a",)), ("v1", ("b",))])
    assert set(parsed) == {("v1", ("a",))} and set(errors) == {("v1", ("b",))}


def test_within_keeps_the_samples_of_the_window_only() -> None:
    samples = {(("a", "1"),): ({"a": "1"}, [(10.0, 1.0), (20.0, 2.0), (30.0, 3.0)])}
    assert within(samples, 10.0, 20.0) == {(("a", "1"),): ({"a": "1"}, [(20.0, 2.0)])}
    assert within(samples, 30.0, 40.0) == {}  # a series with no sample in the window is not in it


def test_first_names_are_each_fields_first_source() -> None:
    names = first_names(PRESETS["openTelemetryGenAI"])
    assert names[0] == "gen_ai_client_operation_duration_seconds_count"
    assert "gen_ai_server_time_to_first_token_seconds_bucket" in names
    assert "gen_ai_client_operation_time_to_first_chunk_seconds_bucket" not in names  # a fallback
    assert first_names(PRESETS["custom"]) == []


# --- batched windows against each member's own read -----------------------------------------------

DURATION = "gen_ai_client_operation_duration_seconds"
TTFT = "gen_ai_server_time_to_first_token_seconds_bucket"
FALLBACK_TTFT = "gen_ai_client_operation_time_to_first_chunk_seconds_bucket"


def fleet(apps: list[str]) -> TSDB:
    """Series for each app value, with different numbers per app, so a mix-up shows."""
    db = TSDB()
    db.add("up", {"job": "j", "instance": "i"}, *((t, 1) for t in range(900, 1100, 15)))
    for k, app in enumerate(apps, start=1):
        for variant in ("v1", "v2"):
            labels = {"variant": variant, "app": app, "job": "j", "instance": "i"}
            scale = k * (2 if variant == "v2" else 1)
            ticks = range(960, 1096, 15)
            db.add(
                f"{DURATION}_count", {**labels, "error_type": ""}, *((t, scale * (t - 900)) for t in ticks)
            )
            if k % 2:
                # Errors born inside the windows on a known target: counted from 0.
                db.add(
                    f"{DURATION}_count",
                    {**labels, "error_type": "500"},
                    *((t, k * (t - 1000)) for t in ticks if t > 1000),
                )
            for le, share in (("0.5", 0.5), ("+Inf", 1.0)):
                db.add(
                    f"{DURATION}_bucket",
                    {**labels, "le": le},
                    *((t, share * scale * (t - 900)) for t in ticks),
                )
                # Half the apps export server TTFT, the other half only the client-side fallback.
                name = TTFT if k % 2 else FALLBACK_TTFT
                db.add(name, {**labels, "le": le}, *((t, share * k * (t - 900)) for t in ticks))
            if variant == "v1":
                # A counter reset in the middle of the windows.
                db.add("llm_eval_score_count", labels, (960, 50), (975, 60), (990, 5), (1005, 9 * k))
    return db


def _provider(client: httpx.Client, app: str, **kwargs: Any) -> PrometheusProvider:
    return PrometheusProvider(
        client,
        "http://prometheus.test:9090",
        PRESETS["openTelemetryGenAI"],
        namespace="team",
        labels={"app": app},
        scrape_interval=15.0,
        **kwargs,
    )


def _compare(
    db: TSDB, windows: list[tuple[str, tuple[str, ...], float, float]], max_members: int = 64, **kwargs: Any
) -> list[str]:
    seen: list[str] = []

    def answer(query: str, at: float) -> Answer:
        seen.append(query)
        return db.answer(query, at)

    client = mock_prometheus(answer)
    members = [
        BatchMember(_provider(client, app, **kwargs), variants, start, end)
        for app, variants, start, end in windows
    ]
    batched = read_batch(members, max_members=max_members)
    seen_batched = list(seen)
    for member, got in zip(members, batched, strict=True):
        alone = member.provider.read(member.variants, member.start, member.end)
        assert not isinstance(got, Exception), got
        assert got.variants == alone.variants, member.provider.labels
        assert got.start == alone.start and got.end == alone.end
        assert len(got.problems) == len(alone.problems)
    return seen_batched


APPS = ["a", "a|b", ".*", 'x"y', "", "back\\slash", "(a)", "b"]


def test_batched_windows_equal_each_members_own_read() -> None:
    db = fleet(APPS)
    # Mixed windows: the same one, later starts (lastAnalysisAt differs), a shorter end, one variant.
    windows = [
        (
            app,
            ("v1", "v2") if i != 3 else ("v2",),
            1000.0 + (15.0 if i % 3 == 1 else 0.0),
            1060.0 - (7.0 if i == 2 else 0),
        )
        for i, app in enumerate(APPS)
    ]
    _compare(db, windows)


def test_a_member_without_series_reads_missing_never_zero() -> None:
    db = fleet(["a"])
    seen = _compare(db, [("a", ("v1", "v2"), 1000.0, 1060.0), ("nobody", ("v1", "v2"), 1000.0, 1060.0)])
    assert seen


def test_queries_do_not_grow_with_members() -> None:
    db = fleet(APPS)
    few = _compare(db, [(app, ("v1", "v2"), 1000.0, 1060.0) for app in APPS[:2]])
    many = _compare(db, [(app, ("v1", "v2"), 1000.0, 1060.0) for app in APPS])
    assert len(many) == len(few)
    alone: list[str] = []
    client = mock_prometheus(lambda query, at: (alone.append(query), db.answer(query, at))[1])
    _provider(client, "a").read(("v1", "v2"), 1000.0, 1060.0)
    assert len(many) < len(alone)  # eight members read with fewer queries than one member alone
    # Windows that start at different times share the same queries (plus, here, one check per start
    # of whether the error series' target was scraped before it: they are born in the windows).
    staggered = _compare(db, [(app, ("v1", "v2"), 1000.0 + 3 * i, 1060.0) for i, app in enumerate(APPS)])
    assert len(staggered) <= len(many) + 8 + len(APPS)


def test_chunks_of_a_few_members_read_the_same_windows() -> None:
    db = fleet(APPS)
    _compare(db, [(app, ("v1", "v2"), 1000.0 + 5 * i, 1060.0) for i, app in enumerate(APPS)], max_members=3)


def test_a_chunk_over_the_size_cap_is_split_and_read_again() -> None:
    db = fleet(APPS)
    windows = [(app, ("v1", "v2"), 1000.0, 1060.0) for app in APPS]
    _compare(db, windows, max_response_bytes=6000)


def test_a_single_member_over_the_cap_is_unavailable_like_its_own_read() -> None:
    client = mock_prometheus(fleet(["a"]).answer)
    member = BatchMember(_provider(client, "a", max_response_bytes=200), ("v1",), 1000.0, 1060.0)
    [got] = read_batch([member])
    assert isinstance(got, MetricsUnavailableError) and "larger than 200 bytes" in str(got)


def test_an_unreachable_prometheus_makes_every_member_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    members = [BatchMember(_provider(client, app), ("v1",), 1000.0, 1060.0) for app in ("a", "b")]
    results = read_batch(members)
    assert all(isinstance(r, MetricsUnavailableError) and "unreachable" in str(r) for r in results)


def test_once_prometheus_fails_a_query_the_chunk_asks_no_more() -> None:
    asked: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        raise httpx.ConnectError("connection refused")

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    members = [BatchMember(_provider(client, app), ("v1", "v2"), 1000.0, 1060.0) for app in ("a", "b")]
    results = read_batch(members, concurrency=1)
    assert all(isinstance(r, MetricsUnavailableError) and "unreachable" in str(r) for r in results)
    assert len(asked) == 1


def test_the_errors_of_answers_over_the_cap_keep_none_of_them() -> None:
    """Every query of a chunk is read to the cap (1 MiB) by a server that floods: what the batch
    returns must not keep those bytes alive (as the frames of the errors' tracebacks did)."""

    def flood() -> Iterator[bytes]:
        yield b'{"status": "success", "data": {"result": ["'
        for _ in range(1000):  # 64 MB if it were read to the end
            yield b" " * (64 << 10)

    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, content=flood())))
    members = [BatchMember(_provider(client, app), ("v1", "v2"), 1000.0, 1060.0) for app in ("a", "b")]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        results = read_batch(members)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert all(isinstance(r, MetricsUnavailableError) and "larger than" in str(r) for r in results)
    assert held < 256 << 10, held


def test_members_must_share_a_batch_key() -> None:
    client = mock_prometheus(fleet(["a"]).answer)
    other = PrometheusProvider(
        client, "http://other.test:9090", PRESETS["openTelemetryGenAI"], namespace="t", labels={"app": "a"}
    )
    assert batch_key(other) != batch_key(_provider(client, "a"))
    with pytest.raises(ValueError, match="one batch key"):
        read_batch(
            [BatchMember(_provider(client, "a"), ("v1",), 1.0, 2.0), BatchMember(other, ("v1",), 1.0, 2.0)]
        )
    resource = _provider(client, "a", variant_from="resource")
    assert batch_key(resource) is None


def test_a_rejected_query_is_a_problem_of_every_member_not_an_outage() -> None:
    db = fleet(APPS[:3])

    def answer(query: str, at: float) -> Answer:
        if query.startswith("llm_eval_score_count") or "llm_eval_score_count{" in query:
            return 400, {"status": "error", "errorType": "bad_data", "error": "parse error"}
        return db.answer(query, at)

    client = mock_prometheus(answer)
    members = [BatchMember(_provider(client, app), ("v1",), 1000.0, 1060.0) for app in APPS[:3]]
    for member, got in zip(members, read_batch(members), strict=True):
        alone = member.provider.read(member.variants, member.start, member.end)
        assert not isinstance(got, Exception)
        assert got.variants == alone.variants
        assert [p.split(":")[0] for p in got.problems] == [p.split(":")[0] for p in alone.problems]
        assert any(re.match(r"v1 eval_score_count: ", p) for p in got.problems)


K1, K2, K3, K4 = ((("s", "1"),), (("s", "2"),), (("s", "3"),), (("s", "4"),))


@pytest.mark.parametrize(
    ("start", "expected", "unsure"),
    [
        # The earliest start: the wide answer is its own read.
        (100.0, {K1: 1.0, K2: 2.0, K3: 3.0}, set()),
        # Later: a sample after the earliest start wins; else the narrow answer (recent enough);
        # a value only the wide answer has may be too old here; a series in none has no value.
        (110.0, {K1: 11.0, K2: 2.0}, {K3}),
        (105.0, {K1: 1.0, K2: 2.0}, {K3}),  # K1's sample at 107 is after this start
        (120.0, {K1: 12.0, K2: 2.0, K4: 40.0}, {K3}),  # K4 was born after the earliest start
    ],
)
def test_shared_baselines(start: float, expected: dict[Any, float], unsure: set[Any]) -> None:
    wide = {K1: ({"s": "1"}, 1.0), K2: ({"s": "2"}, 2.0), K3: ({"s": "3"}, 3.0)}
    narrow = {K1: ({"s": "1"}, 1.0), K2: ({"s": "2"}, 2.0)}
    samples = {
        K1: ({"__name__": "m", "s": "1"}, [(107.0, 11.0), (115.0, 12.0)]),
        K4: ({"__name__": "m", "s": "4"}, [(118.0, 40.0)]),
    }
    got, ambiguous = shared_baselines(start, 100.0, wide, narrow, samples)
    assert {k: v for k, (_, v) in got.items()} == expected
    assert ambiguous == unsure
    assert all("__name__" not in labels for labels, _ in got.values())


def test_a_series_last_seen_an_hour_ago_is_read_as_each_start_sees_it() -> None:
    db = fleet(["a"])
    # Last scraped just under an hour before the earliest start: inside the look-back of the
    # members that start early, outside it for those that start later.
    db.add(
        "llm_eval_score_sum",
        {"variant": "v1", "app": "stale", "job": "j", "instance": "i"},
        (1000 - 3590, 5.0),
    )
    seen = _compare(db, [("stale", ("v1",), 1000.0 + d, 1060.0) for d in (0.0, 5.0, 10.0, 20.0)])
    assert any(q.startswith("last_over_time") for q in seen)
    client = mock_prometheus(db.answer)
    early = _provider(client, "stale").read(("v1",), 1000.0, 1060.0).variants["v1"]
    late = _provider(client, "stale").read(("v1",), 1020.0, 1060.0).variants["v1"]
    assert early.eval_score_sum == 0.0 and late.eval_score_sum is None  # the test is not vacuous


@pytest.mark.parametrize(
    ("windows", "max_members", "expected"),
    [
        ([], 4, []),
        ([(0, 10), (0, 10), (0, 10)], 2, [[0, 1], [2]]),
        ([(0, 10), (5, 12), (600, 615)], 10, [[0, 1, 2]]),
        # A look resumed after a long pause reads alone; the others still share.
        ([(0, 3600), (3590, 3605), (3591, 3606)], 10, [[0], [1, 2]]),
        ([(0, 15), (950, 965)], 10, [[0], [1]]),
    ],
)
def test_chunks(windows: list[tuple[float, float]], max_members: int, expected: list[list[int]]) -> None:
    assert chunks(windows, max_members, max_span=900.0) == expected


def test_two_sets_of_credentials_are_never_one_batch() -> None:
    client = mock_prometheus(fleet(["a"]).answer)
    alice = Credentials.bearer("alice-token", "bearer token from Secret a/prom")
    bob = Credentials.bearer("bob-token", "bearer token from Secret b/prom")
    keys = [batch_key(_provider(client, "a", credentials=c)) for c in (None, alice, bob, alice)]
    assert len({keys[0], keys[1], keys[2]}) == 3 and keys[1] == keys[3]
    assert "alice-token" not in repr(keys)


def _names_asked(queries: list[str]) -> set[str]:
    return {name for name in re.findall(r"[a-z_]+(?=\{)", " ".join(queries)) if name != "up"}


def test_a_read_of_some_fields_asks_only_their_metrics_batched_or_alone() -> None:
    """A look reads the fields its SLOs need; members needing different fields still share a batch,
    and each gets the window its own read of those fields gives."""
    db = fleet(APPS)
    requests_only = ("requests",)
    every: list[str] = []
    _provider(mock_prometheus(lambda q, at: (every.append(q), db.answer(q, at))[1]), "a").read(
        ("v1", "v2"), 1000.0, 1060.0
    )
    few: list[str] = []
    narrow = _provider(
        mock_prometheus(lambda q, at: (few.append(q), db.answer(q, at))[1]), "a", fields=requests_only
    )
    window = narrow.read(("v1", "v2"), 1000.0, 1060.0)
    assert _names_asked(few) == {f"{DURATION}_count"} < _names_asked(every)
    assert window.variants["v1"].requests is not None and window.variants["v1"].ttft is None
    assert "ttft" not in window.variants["v1"].missing  # unread is not missing
    mixed = [(app, ("v1", "v2"), 1000.0, 1060.0) for app in APPS]
    seen: list[str] = []
    client = mock_prometheus(lambda q, at: (seen.append(q), db.answer(q, at))[1])
    members = [
        BatchMember(_provider(client, app, fields=requests_only if i % 2 else ("requests", "ttft")), v, s, e)
        for i, (app, v, s, e) in enumerate(mixed)
    ]
    for member, got in zip(members, read_batch(members), strict=True):
        assert not isinstance(got, Exception), got
        assert got.variants == member.provider.read(member.variants, member.start, member.end).variants
    assert f"{DURATION}_bucket" not in _names_asked(seen)  # latency: no member needs it


def test_an_unknown_field_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="no such window fields: tokens"):
        _provider(mock_prometheus(fleet(["a"]).answer), "a", fields=("requests", "tokens"))
