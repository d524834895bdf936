import pytest

from llmrollout.k8s.watch import Resource, deleted_since, object_key


@pytest.mark.parametrize(
    ("known", "listed", "deleted"),
    [
        ({}, {"a/x": {}}, []),
        ({"a/x": "u1"}, {"a/x": {}}, []),
        ({"a/x": "u1", "a/y": "u2"}, {"a/x": {}}, ["a/y"]),
        ({"a/x": "u1", "b/x": "u2"}, {}, ["a/x", "b/x"]),
    ],
)
def test_a_listing_reports_what_was_deleted_while_the_watch_was_away(
    known: dict[str, str], listed: dict[str, object], deleted: list[str]
) -> None:
    assert deleted_since(known, listed) == deleted


def test_paths_and_keys() -> None:
    resource = Resource("llmrollout.io", "v1alpha1", "llmdeployments")
    assert resource.path(None) == "/apis/llmrollout.io/v1alpha1/llmdeployments"
    assert resource.path("team a") == "/apis/llmrollout.io/v1alpha1/namespaces/team%20a/llmdeployments"
    assert object_key({"metadata": {"namespace": "n", "name": "x"}}) == "n/x"
