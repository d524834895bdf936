import pytest

from llmrollout.handlers.llmdeployment import uses_own_watch


@pytest.mark.parametrize(
    ("namespaces", "own"),
    [
        ((), True),  # --all-namespaces
        (("team-a",), True),
        (("team-a", "team-b"), True),
        (("team-*",), False),
        (("team-?",), False),
        (("!kube-system",), False),
        (("team-[ab]",), False),
        (("team-a,team-b",), False),
    ],
)
def test_our_watch_serves_named_namespaces_and_kopf_serves_patterns(
    namespaces: tuple[str, ...], own: bool
) -> None:
    assert uses_own_watch(namespaces) is own
