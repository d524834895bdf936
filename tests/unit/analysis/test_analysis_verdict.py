import itertools

import pytest

from llmrollout.analysis.verdict import Verdict, worst


def test_verdicts_are_ordered_pass_inconclusive_fail() -> None:
    assert Verdict.PASS < Verdict.INCONCLUSIVE < Verdict.FAIL


@pytest.mark.parametrize(
    "verdicts",
    [list(combo) for size in range(1, 4) for combo in itertools.product(list(Verdict), repeat=size)],
)
def test_worst_is_the_most_severe(verdicts: list[Verdict]) -> None:
    expected = (
        Verdict.FAIL
        if Verdict.FAIL in verdicts
        else Verdict.INCONCLUSIVE
        if Verdict.INCONCLUSIVE in verdicts
        else Verdict.PASS
    )
    assert worst(verdicts) is expected
    assert worst(iter(verdicts)) is expected


def test_no_evidence_is_inconclusive_never_pass() -> None:
    assert worst([]) is Verdict.INCONCLUSIVE


@pytest.mark.parametrize("verdict", list(Verdict))
def test_label_round_trips(verdict: Verdict) -> None:
    assert Verdict.from_label(verdict.label) is verdict
    assert Verdict.from_label(verdict.label.lower()) is verdict
    assert verdict.label[0].isupper()


def test_unknown_label_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown verdict"):
        Verdict.from_label("Successful")
