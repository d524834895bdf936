from typing import Any

from llmrollout.handlers.llmdeployment import _Latest


def _obj(version: str, uid: str = "u1") -> dict[str, Any]:
    return {"metadata": {"namespace": "a", "name": "chat", "uid": uid, "resourceVersion": version}}


def test_our_write_coming_back_becomes_the_copy_without_waking() -> None:
    latest = _Latest()
    assert latest.saw("a/chat", _obj("10"))  # first sight wakes
    latest.wrote("u1", ("10",), _obj("11"))
    assert latest.came_back("11", "u1")
    assert latest.body("a/chat") == _obj("11")
    assert not latest.came_back("11", "u1")  # once only


def test_what_is_not_our_latest_write_goes_the_usual_way() -> None:
    latest = _Latest()
    latest.saw("a/chat", _obj("10"))
    latest.wrote("u1", ("10",), _obj("11"))
    latest.wrote("u1", ("11",), _obj("12"))
    assert not latest.came_back("11", "u1")  # a later write exists: the event is parsed
    assert not latest.came_back("12", "u2")  # another object's uid
    assert not latest.came_back("99", "u1")  # someone else's write
    assert latest.body("a/chat") == _obj("10")
