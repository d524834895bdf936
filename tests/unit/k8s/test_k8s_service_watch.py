"""ServiceWatch: what a Services watch says exists, and whom a change wakes. No I/O."""

from __future__ import annotations

from llmrollout.k8s import ServiceWatch


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_only_what_the_watch_saw_exists_and_a_deletion_ends_it() -> None:
    watch = ServiceWatch(Clock())
    assert not watch.exists("a", "bot-v1")  # not seen (the listing not done): the API is asked
    watch.saw("a", "bot-v1", True)
    assert watch.exists("a", "bot-v1")
    assert not watch.exists("b", "bot-v1")  # another namespace's Service of that name is not it
    watch.saw("a", "bot-v1", False)
    assert not watch.exists("a", "bot-v1")


def test_a_seen_service_is_trusted_for_a_while_and_a_get_renews_it() -> None:
    clock = Clock()
    watch = ServiceWatch(clock, trust_seconds=300)
    watch.saw("a", "bot-v1", True)
    clock.now = 299
    assert watch.exists("a", "bot-v1")
    clock.now = 300
    assert not watch.exists("a", "bot-v1")  # asked of the API again
    watch.confirmed("a", "bot-v1", True)
    assert watch.exists("a", "bot-v1")
    watch.confirmed("a", "bot-v1", False)  # a 404
    assert not watch.exists("a", "bot-v1")


def test_a_get_never_brings_back_what_the_watch_has_not_seen() -> None:
    watch = ServiceWatch(Clock())
    watch.confirmed("a", "bot-v1", True)  # e.g. a GET that raced the deletion event
    assert not watch.exists("a", "bot-v1")


def test_a_service_that_appears_or_goes_wakes_the_objects_pointing_at_it() -> None:
    watch = ServiceWatch(Clock())
    watch.refer("a/one", "a", ["bot-v1", "bot-v2"])
    watch.refer("a/two", "a", ["bot-v2"])
    watch.refer("b/one", "b", ["bot-v2"])
    assert watch.saw("a", "bot-v2", True) == ["a/one", "a/two"]
    assert watch.saw("a", "bot-v2", True) == []  # a modification changes nothing that matters
    assert watch.saw("a", "bot-v1", True) == ["a/one"]
    assert watch.saw("a", "bot-v3", True) == []  # nobody points at it
    watch.refer("a/one", "a", ["bot-v1"])  # the spec moved off bot-v2
    assert watch.saw("a", "bot-v2", False) == ["a/two"]
    watch.forget("a/two")
    assert watch.saw("a", "bot-v2", True) == []
    assert watch.saw("b", "bot-v2", True) == ["b/one"]
