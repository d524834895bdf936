"""bench/scale's comparison of batched and unbatched reads: the window it reads, what counts as the
same window and the same decision (the real state machine deciding), and how a point reports it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from bench.scale.measure import Point, markdown
from bench.scale.same import (
    Compared,
    compare,
    differences_note,
    ingested_window,
    summary,
    tally,
    window_difference,
)
from llmrollout.api import LLMDeploymentStatus
from llmrollout.rollout import Observation, Outcome, due_window, reconcile
from tests.unit.rollout.windows import MINUTE, T0, Traffic, observe, spec


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        # 20 s (a scrape interval and the margin) before 12:00:37 is 12:00:17: the window to 12:00:15.
        ("12:00:37", "12:00:00", "12:00:15"),
        ("12:00:35", "12:00:00", "12:00:15"),
        ("12:00:34.9", "11:59:45", "12:00:00"),
    ],
)
def test_the_window_compared_is_aligned_and_ended_a_scrape_and_a_margin_ago(
    now: str, start: str, end: str
) -> None:
    def at(clock: str) -> datetime:
        return datetime.fromisoformat(f"2026-01-01T{clock}+00:00")

    assert ingested_window(at(now), interval=15.0, scrape=15.0) == (at(start), at(end))


def _rolling() -> tuple[Observation, Callable[[Observation], Outcome]]:
    """A rollout one interval in, the window now due, and the state machine deciding on it."""
    s = spec(candidate="v2")
    idle = reconcile(s.model_copy(update={"candidate": None}), LLMDeploymentStatus(), 1, T0 - MINUTE)
    status = reconcile(s, idle.status, 2, T0).status
    assert status.last_analysis_at is not None
    now = status.last_analysis_at + s.strategy.interval
    due = due_window(s, status, now)
    assert due is not None

    def decide(observation: Observation) -> Outcome:
        return reconcile(s, status, 2, now, observation)

    return observe(*due), decide


def _with(observation: Observation, requests: float = 400, errors: float = 4) -> Observation:
    return observe(observation.start, observation.end, candidate=Traffic(requests=requests, errors=errors))


def _unavailable(observation: Observation, why: str = "Prometheus did not answer") -> Observation:
    return Observation(observation.start, observation.end, unavailable=why)


Change = Callable[[Observation], Observation]

# (batched read, read alone, same window, same decision)
CASES: dict[str, tuple[Change, Change, bool, bool]] = {
    "equal windows": (lambda o: o, lambda o: o, True, True),
    # Another deployment's series added to a healthy one's: twice the counts, the same error rate.
    "doubled counts, decided alike": (lambda o: _with(o, requests=800, errors=8), lambda o: o, False, True),
    # Another deployment's errors leaked in: a breach where its own read has none.
    "leaked errors": (lambda o: _with(o, errors=40), lambda o: o, False, False),
    "batched read unavailable": (_unavailable, lambda o: o, False, False),
    # Equal, but without requests a batch that gave it another's series (or none) could not show.
    "equal but empty windows": (
        lambda o: _with(o, requests=0, errors=0),
        lambda o: _with(o, requests=0, errors=0),
        False,
        True,
    ),
    # Nothing was compared: never counted as the same window, though the decisions are alike.
    "both unavailable": (_unavailable, _unavailable, False, True),
}


@pytest.mark.parametrize("case", CASES)
def test_compare_counts_windows_and_decisions_apart(case: str) -> None:
    batched_of, alone_of, same_window, same_decision = CASES[case]
    observation, decide = _rolling()
    compared = compare("d0007", batched_of(observation), alone_of(observation), decide)
    assert (compared.same_window, compared.same_decision) == (same_window, same_decision)
    assert (compared.why == "") == (same_window and same_decision)


def test_a_differing_window_names_the_variant_and_field() -> None:
    observation, decide = _rolling()
    leaked = _with(observation, errors=40)
    assert window_difference(leaked, observation) == "v2.errors 40 != 4"
    compared = compare("d0007", leaked, observation, decide)
    assert compared.why == (
        "window: v2.errors 40 != 4; decision: batched Fail (RolledBack, step 0, SLOBreached,RolledBack),"
        " alone Pass (Progressing, step 1, StepAdvanced)"
    )
    empty = _with(observation, requests=0, errors=0)
    assert compare("d0007", empty, empty, decide).why == (
        "window: equal, but no requests for v2: nothing to tell apart"
    )
    assert window_difference(_unavailable(observation), observation) == (
        "batched: unavailable (Prometheus did not answer); alone: a window"
    )


def test_tally_summary_and_notes_name_every_deployment_that_differed() -> None:
    results = [Compared(f"d{i:04d}", True, True) for i in range(995)]
    results += [Compared(f"d{i:04d}", False, True, f"window: v2.requests {i}") for i in (999, 995, 996)]
    results += [Compared("d0997", False, False, "window: x"), Compared("d0998", True, False, "decision: y")]
    sameness = tally(results)
    assert (sameness.compared, sameness.windows, sameness.decisions) == (1000, 996, 998)
    assert not sameness.all_same
    assert summary(1000, 996, 998) == "same as unbatched: windows 996/1000, decisions 998/1000"
    note = differences_note(sameness)
    assert note.startswith("differ from unbatched reads: d0995, d0996, d0997, d0998, d0999 (")
    # The first few say what differed; the rest are named.
    assert "d0995: window: v2.requests 995; d0996: window: v2.requests 996; d0997: window: x)" in note
    assert "decision: y" not in note

    same = tally([Compared("d0000", True, True)])
    assert same.all_same and differences_note(same) == ""
    assert not tally([]).all_same


def test_a_point_reports_its_comparison() -> None:
    base = Point(100, "rolling", "batched", 90.0, 0.2, 150.0, 12.0, 7.0, 8.0, 16.0, 40, 15.0)
    same = Point(**{**base.to_json(), "same_compared": 100, "same_windows": 100, "same_decisions": 100})
    differed = Point(**{**base.to_json(), "n": 300, "same_compared": 300, "same_windows": 299})
    differed = Point(**{**differed.to_json(), "same_decisions": 300, "notes": "differ: d0001"})
    assert same.same_as_unbatched and not differed.same_as_unbatched and not base.same_as_unbatched
    report = markdown([base, same, differed], {})
    assert "| 40 | - |  |" in report
    assert "| 40 | 100/100, 100/100 |  |" in report
    assert "| 40 | 299/300, 300/300 | differ: d0001 |" in report
    # Reports written before the comparison existed still load.
    assert Point(**base.to_json()).same_compared is None
