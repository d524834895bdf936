"""Sharding by tables: a stable hash splits objects among N shards, each object in exactly one; label
selectors as Kubernetes reads them; bad --shard/--selector input named."""

from __future__ import annotations

import hashlib

import pytest

from llmrollout.handlers.shards import Shard, parse_selector, parse_shard, shard_of


def test_every_object_belongs_to_exactly_one_shard_and_the_split_is_even() -> None:
    names = [(f"team-{n % 7}", f"bot-{n}") for n in range(2000)]
    shards = [Shard(i, 4) for i in range(4)]
    owners = [[s.index for s in shards if s.owns(ns, name, {})] for ns, name in names]
    assert all(len(o) == 1 for o in owners)
    counts = [sum(1 for o in owners if o == [i]) for i in range(4)]
    assert min(counts) > 400  # 500 each on average


def test_the_hash_is_stable_across_processes() -> None:
    # sha256 of namespace/name, not Python's salted hash(): every replica and version agrees.
    assert shard_of("default", "support-bot", 1) == 0
    assert (
        shard_of("team-a", "bot", 1000)
        == int.from_bytes(hashlib.sha256(b"team-a/bot").digest()[:8], "big") % 1000
    )


def test_one_shard_keeps_the_plain_lease_name_and_n_shards_get_their_own() -> None:
    assert Shard().lease_name("llmrollout") == "llmrollout"
    assert Shard(1, 3).lease_name("llmrollout") == "llmrollout-shard-1"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("0/1", (0, 1)), ("1/2", (1, 2)), (" 3/4 ", (3, 4))],
)
def test_parse_shard(text: str, parsed: tuple[int, int]) -> None:
    assert parse_shard(text) == parsed


@pytest.mark.parametrize("text", ["2/2", "0/0", "-1/2", "1", "a/b", "1/2/3"])
def test_a_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"i/N|N >= 1"):
        parse_shard(text)


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("tier=gold", {"tier": "gold"}, True),
        ("tier==gold", {"tier": "gold"}, True),
        ("tier=gold", {"tier": "silver"}, False),
        ("tier=gold", {}, False),
        ("tier!=gold", {}, True),
        ("tier!=gold", {"tier": "gold"}, False),
        ("tier in (gold, silver)", {"tier": "silver"}, True),
        ("tier notin (gold,silver)", {"tier": "silver"}, False),
        ("tier notin (gold,silver)", {}, True),
        ("canary", {"canary": ""}, True),
        ("!canary", {"canary": "x"}, False),
        ("tier in (gold,silver),team=a", {"tier": "gold", "team": "a"}, True),
        ("tier in (gold,silver),team=a", {"tier": "gold", "team": "b"}, False),
        ("example.com/shard=1", {"example.com/shard": "1"}, True),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert Shard(selector=parse_selector(selector)).owns("ns", "name", labels) == matches


@pytest.mark.parametrize("text", ["=gold", "ti er=gold", "tier in gold"])
def test_a_bad_selector_names_the_part(text: str) -> None:
    with pytest.raises(ValueError, match="not a label key"):
        parse_selector(text)
