"""Exact counter reads at production scrape intervals: each window's evidence lags by the scrape phase,
and what a look misses counts in the next one."""

from __future__ import annotations

import numpy as np
import pytest

from bench.decisions.model import INTERVAL_SECONDS, SLOT_SECONDS, SLOTS_PER_INTERVAL, STEPS, scenario
from bench.decisions.policies import PASS, Look
from bench.decisions.rollout import run
from bench.decisions.simulate import LAG_PHASES, generate, scrape_lags, window_slots


def exact_increase(scrapes: np.ndarray, counter: np.ndarray, start: float, end: float) -> float:
    """The operator's read: the value at the last scrape at or before `end` minus the value at the last
    scrape at or before `start` (0 before the first scrape)."""

    def at(t: float) -> float:
        done = np.flatnonzero(scrapes <= t)
        return float(counter[done[-1]]) if len(done) else 0.0

    return at(end) - at(start)


@pytest.mark.parametrize(("scrape", "lags"), [(1.0, {0}), (15.0, {0, 1}), (60.0, {0, 1, 2, 3, 4})])
def test_lags_cover_the_scrape_phase(scrape: float, lags: set[int]) -> None:
    lag = scrape_lags(scrape, 8 * LAG_PHASES)
    assert set(lag.tolist()) == lags
    # Uniform phase: the mean lag is half a scrape interval (to the slot grid's rounding).
    assert lag.mean() * SLOT_SECONDS == pytest.approx(scrape / 2, abs=SLOT_SECONDS / 2)
    assert np.all(lag * SLOT_SECONDS <= scrape)


def test_window_slots_are_the_exact_increments_of_request_level_counters() -> None:
    """With 60 s scrapes at phase 15 s, the last scrape before each window's end is 45 s before it:
    the read spans the slots three slots earlier than the window's own, and loses nothing."""
    rng = np.random.default_rng(3)
    minutes = 6
    arrivals = np.sort(rng.uniform(0, minutes * INTERVAL_SECONDS, 2000))
    scrapes = np.arange(minutes + 1) * 60.0 + 15.0
    counter = np.array([np.sum(arrivals <= t) for t in scrapes], dtype=float)
    per_slot = np.histogram(arrivals, bins=np.arange(minutes * SLOTS_PER_INTERVAL + 1) * SLOT_SECONDS)[0]
    lag = np.array([3])
    total = 0.0
    for minute in range(1, minutes + 1):
        start, end = (minute - 1) * INTERVAL_SECONDS, minute * INTERVAL_SECONDS
        slots = window_slots(minute, lag)[0]
        simulated = float(per_slot[slots[slots >= 0]].sum())
        assert simulated == exact_increase(scrapes, counter, start, end), minute
        total += simulated
    # Everything served after the last scrape before the end is still to come, nothing is lost.
    assert total == np.sum(arrivals <= scrapes[scrapes <= minutes * INTERVAL_SECONDS][-1])


class Recorder:
    """Passes every window and keeps what it read exactly."""

    name = "recorder"
    failure_limit = 1
    counters = "exact"

    def __init__(self) -> None:
        # (minute, replicate) -> what was read, and the level of that minute
        self.reads: dict[tuple[int, int], float] = {}
        self.levels: dict[tuple[int, int], int] = {}

    def start(self, replicates: int) -> None:
        pass

    def look(self, look: Look) -> np.ndarray:
        for row, replicate in enumerate(look.index.tolist()):
            self.reads[(look.minute, replicate)] = float(look.candidate_exact.requests[row])
            self.levels[(look.minute, replicate)] = int(look.level[row])
        return np.full(len(look.index), PASS)


def test_lagged_reads_take_each_slot_at_the_weight_it_was_served_at() -> None:
    """A look just after a step change reads the end of the previous step's traffic."""
    trace = generate(scenario("healthy: identical"), 10.0, LAG_PHASES, (11,))
    recorder = Recorder()
    run(recorder, trace, "exact", scrape_seconds=60.0)
    lags = scrape_lags(60.0, LAG_PHASES)
    requests = trace.candidate.requests
    for (minute, replicate), read in recorder.reads.items():
        expected = 0.0
        for slot in window_slots(minute, lags[replicate : replicate + 1])[0]:
            if slot < 0:
                continue
            level = recorder.levels[(slot // SLOTS_PER_INTERVAL + 1, replicate)]
            expected += requests[level, slot, replicate]
        assert read == expected, (minute, replicate)
    # The recorder passes every window, so the candidate climbs a step each minute it has enough
    # requests: the levels did change while lagged windows were read.
    assert set(recorder.levels.values()) == set(range(len(STEPS)))
    assert any(
        lags[r] and recorder.levels[(m, r)] != recorder.levels.get((m - 1, r), 0) for m, r in recorder.levels
    )


def test_one_second_scrapes_read_each_window_exactly() -> None:
    trace = generate(scenario("healthy: identical"), 10.0, 4, (12,))
    recorder = Recorder()
    run(recorder, trace, "exact", scrape_seconds=1.0)
    for (minute, replicate), read in recorder.reads.items():
        slots = np.arange((minute - 1) * SLOTS_PER_INTERVAL, minute * SLOTS_PER_INTERVAL)
        level = recorder.levels[(minute, replicate)]
        assert read == trace.candidate.requests[level, slots, replicate].sum()
