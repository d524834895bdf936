"""Look windows end on multiples of the look interval in epoch time, by tables: every LLMDeployment
with the same cadence shares its boundaries (which batched reads need), and the first window after a
start is never a sliver: it holds half a cadence of traffic after the scrape lag."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from llmrollout.api import LLMDeploymentSpec, LLMDeploymentStatus, Phase
from llmrollout.rollout import due_window, reconcile, window_fields
from llmrollout.rollout.machine import boundary
from tests.unit.rollout.windows import MINUTE, T0, Traffic, observe, spec

S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("now", "cadence", "expected"),
    [
        (T0, MINUTE, T0),
        (T0 + 59 * S, MINUTE, T0),
        (T0 + 60 * S, MINUTE, T0 + MINUTE),
        (T0 + 61.5 * S, MINUTE, T0 + MINUTE),
        (T0 + 44 * S, 15 * S, T0 + 30 * S),
        (T0 + 45 * S, 15 * S, T0 + 45 * S),
        (T0 + timedelta(microseconds=999_999), S, T0),
    ],
)
def test_the_boundary_is_the_latest_multiple_of_the_cadence(
    now: datetime, cadence: timedelta, expected: datetime
) -> None:
    assert boundary(now, cadence) == expected


def test_a_cadence_that_does_not_divide_a_minute_still_has_fixed_boundaries_in_epoch_time() -> None:
    for offset in range(0, 120, 7):
        end = boundary(T0 + offset * S + 0.3 * S, 7 * S)
        assert end.timestamp() % 7 == 0 and end <= T0 + offset * S + 0.3 * S < end + 7 * S


def rolling(s: LLMDeploymentSpec, started_at: datetime) -> LLMDeploymentStatus:
    idle = reconcile(s.model_copy(update={"candidate": None}), LLMDeploymentStatus(), 1, T0 - MINUTE)
    return reconcile(s, idle.status, 2, started_at).status


@pytest.mark.parametrize(
    ("scrape", "started", "now", "window"),
    [
        # Started on a boundary: windows are whole intervals.
        (60, 0, 59, None),
        (60, 0, 60, (0, 60)),
        (60, 0, 75, (0, 60)),
        # A first window must hold half an interval of the candidate's traffic after the last scrape
        # read before its end (1 s early), which may come a scrape interval before that: at 1m scrapes
        # a whole interval, so started 10 s in, the first window runs to the boundary after next.
        (60, 10, 60, None),
        (60, 10, 119, None),
        (60, 10, 120, (10, 120)),
        (60, 30, 60, None),
        (60, 30, 120, (30, 120)),
        (60, 40, 120, (40, 120)),
        # At 15 s scrapes 46 s is enough; at 1 s scrapes 32 s (half an interval was, before the lag).
        (15, 10, 60, (10, 60)),
        (15, 20, 60, None),
        (1, 28, 60, (28, 60)),
        (1, 29, 60, None),
        (1, 40, 119, None),
        (1, 40, 120, (40, 120)),
        # A late reconcile still ends on the latest boundary, so late looks catch up in one window.
        (60, 0, 185, (0, 180)),
    ],
)
def test_threshold_windows_end_on_interval_boundaries(
    scrape: int, started: int, now: int, window: tuple[int, int] | None
) -> None:
    s = spec(candidate="v2", metrics__prometheus__scrapeInterval=f"{scrape}s")
    status = rolling(s, T0 + started * S)
    expected = None if window is None else (T0 + window[0] * S, T0 + window[1] * S)
    assert due_window(s, status, T0 + now * S) == expected


@pytest.mark.parametrize(
    ("scrape", "started", "now", "window"),
    [
        (60, 0, 29, None),
        (60, 0, 30, (0, 30)),
        (60, 20, 30, None),  # 10 s: a sliver of a 30 s look
        (60, 20, 60, (20, 60)),
        (60, 14, 30, None),  # 16 s: less than a look at 1m scrapes
        (60, 14, 60, (14, 60)),
        (1, 13, 30, (13, 30)),  # at 1 s scrapes 17 s is enough
        (1, 14, 30, None),
    ],
)
def test_sequential_looks_end_on_half_interval_boundaries(
    scrape: int, started: int, now: int, window: tuple[int, int] | None
) -> None:
    s = spec(candidate="v2", analysis__method="sequential", metrics__prometheus__scrapeInterval=f"{scrape}s")
    status = rolling(s, T0 + started * S)
    expected = None if window is None else (T0 + window[0] * S, T0 + window[1] * S)
    assert due_window(s, status, T0 + now * S) == expected


def test_two_deployments_started_apart_share_every_boundary_after_their_first_look() -> None:
    s = spec(candidate="v2")
    ends = []
    for started in (3 * S, 27 * S):
        status = rolling(s, T0 + started)
        for now in (T0 + 121 * S, T0 + 181 * S, T0 + 241 * S):
            due = due_window(s, status, now)
            assert due is not None
            status = reconcile(s, status, 2, now, observe(*due)).status
            ends.append(due[1])
    assert ends[:3] == ends[3:] == [T0 + 2 * MINUTE, T0 + 3 * MINUTE, T0 + 4 * MINUTE]


def test_a_step_lasts_an_interval_from_the_reconcile_that_started_it_to_the_look_after() -> None:
    """A step starts when its weights are decided (a moment after the boundary its window ended on);
    the look an interval later can advance it: that moment is forgiven, up to 2 s."""
    s = spec(candidate="v2", strategy__steps=[10, 20, 30, 40, 50], metrics__prometheus__scrapeInterval="1s")
    status = rolling(s, T0 + 10 * S)
    steps = []
    for now in (T0 + 60.4 * S, T0 + 120.4 * S, T0 + 180.4 * S, T0 + 240.4 * S):
        due = due_window(s, status, now)
        assert due is not None
        status = reconcile(s, status, 2, now, observe(*due, candidate=Traffic())).status
        steps.append((status.step, status.step_started_at))
    assert status.phase == Phase.PROGRESSING
    # The first window (50 s) is short of a step's interval: the first step lasts to the second look.
    assert steps == [
        (0, T0 + 10 * S),
        (1, T0 + 120.4 * S),
        (2, T0 + 180.4 * S),
        (3, T0 + 240.4 * S),
    ]


def test_a_step_decided_late_still_lasts_its_interval() -> None:
    """After a restart the first look runs late, a moment before the next boundary: the step it
    starts must not pass at that boundary, but hold its weights an interval (seen in e2e)."""
    s = spec(candidate="v2", strategy__steps=[10, 20, 30, 40, 50])
    status = rolling(s, T0)
    due = due_window(s, status, T0 + 60 * S)
    assert due is not None
    status = reconcile(s, status, 2, T0 + 60 * S, observe(*due, candidate=Traffic())).status
    late = T0 + 179 * S  # the operator was down: one longer window, ending on the last boundary
    due = due_window(s, status, late)
    assert due == (T0 + 60 * S, T0 + 120 * S)
    status = reconcile(s, status, 2, late, observe(*due, candidate=Traffic())).status
    assert (status.step, status.step_started_at) == (2, late)
    due = due_window(s, status, T0 + 180 * S)
    assert due is not None
    held = reconcile(s, status, 2, T0 + 180 * S, observe(*due, candidate=Traffic())).status
    assert held.step == 2  # 1 s at 20%, not an interval
    due = due_window(s, held, T0 + 240 * S)
    assert due is not None
    advanced = reconcile(s, held, 2, T0 + 240 * S, observe(*due, candidate=Traffic())).status
    assert advanced.step == 3


@pytest.mark.parametrize(
    ("applied", "advances"),
    [
        ({"v1": 90, "v2": 10, "hosted": 0}, True),  # the step's weights are on the route
        # Decided, but the reconcile that decided it died before the route write:
        ({"v1": 100, "v2": 0, "hosted": 0}, False),
        ({}, True),  # written by an operator from before appliedWeights: nothing says otherwise
    ],
)
def test_a_step_whose_weights_never_reached_the_route_does_not_end(
    applied: dict[str, int], advances: bool
) -> None:
    """A step starts when its traffic does: a look an interval after the decision cannot end a step
    whose weights are not yet on the route (the route went 10, 20, 40 in e2e before this)."""
    s = spec(candidate="v2", strategy__steps=[10, 20, 30, 40, 50])
    status = rolling(s, T0).model_copy(update={"applied_weights": applied})
    due = due_window(s, status, T0 + 60 * S)
    assert due is not None
    after = reconcile(s, status, 2, T0 + 60 * S, observe(*due, candidate=Traffic())).status
    assert (after.step, after.weights == status.weights) == ((1, False) if advances else (0, True))


@pytest.mark.parametrize(
    ("slos", "fields"),
    [
        ({}, ("requests",)),
        ({"errorRate": {"max": 0.02}, "ttft": {"p95": "800ms"}}, ("requests", "ttft", "errors")),
        ({"latency": {"p95": "2s"}}, ("requests", "latency")),
        (
            {"quality": {"maxDropVsStable": 0.05}},
            ("requests", "eval_score_sum", "eval_score_count", "eval_passed", "eval_failed", "eval_score"),
        ),
        # Histograms that bound a mean's variance are read too, where the exporter has them.
        ({"quality": {"minScore": 0.8}}, ("requests", "eval_score_sum", "eval_score_count", "eval_score")),
        (
            {"costPerRequest": {"maxUSD": 0.002}},
            (
                "requests",
                "input_tokens",
                "output_tokens",
                "input_tokens_per_request",
                "output_tokens_per_request",
            ),
        ),
    ],
)
def test_a_look_reads_the_requests_and_the_fields_its_slos_need(
    slos: dict[str, object], fields: tuple[str, ...]
) -> None:
    assert window_fields(spec(slos=slos)) == fields
