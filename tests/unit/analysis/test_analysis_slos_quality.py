"""quality.minScore on the scores' histogram: the bound on squares (a table), the gain over assuming
scores of 0 or 1, and the error rates by simulation; maxDropVsStable's route chosen from stable's
verdicts."""

import json
import math
from typing import Any

import numpy as np
import pytest

from llmrollout.analysis.batch import HistogramBatch, SideBatch, WindowBatch
from llmrollout.analysis.hypotheses import LookInput, MeanTest, SequentialConfig
from llmrollout.analysis.observations import Histogram, VariantWindow, Window
from llmrollout.analysis.sequential import (
    SequentialState,
    evaluate_batch,
    evaluate_sequential,
    load_state,
    plan,
)
from llmrollout.analysis.slos import quality
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import SLOs
from llmrollout.eval.judge.metrics import SCORE_BUCKETS

PASS, FAIL = Verdict.PASS, Verdict.FAIL
NO_WARMUP = SequentialConfig(warmup_seconds=0.0)
MIN_SCORE = SLOs.model_validate({"quality": {"minScore": 0.8}})
EDGES = (0.5, 0.9)


def _side(cumulative: list[float] | None, total: float, count: float) -> SideBatch:
    nan = np.full(1, np.nan)
    hist = None if cumulative is None else HistogramBatch(EDGES, np.array([cumulative]))
    return SideBatch(nan, nan, nan, nan, np.array([total]), np.array([count]), nan, nan, eval_score=hist)


@pytest.mark.parametrize(
    ("cumulative", "total", "count", "expected"),
    [
        # Two scores up to 0.5, three up to 0.9, one up to 1: 2 x 0.25 + 3 x 0.81 + 1.
        ([2.0, 5.0, 6.0], 4.2, 6.0, 2 * 0.25 + 3 * 0.81 + 1.0),
        # The histogram counts fewer scores than the counter: the widest bound, the sum itself.
        ([2.0, 5.0, 5.0], 3.9, 6.0, 3.9),
        # A sum above what the upper edges allow (2 x 0.5 + 3 x 0.9 + 1 = 4.7): the widest too.
        ([2.0, 5.0, 6.0], 4.8, 6.0, 4.8),
        # Never above the widest bound: all six scores in the top bucket, summing to 5.5.
        ([0.0, 0.0, 6.0], 5.5, 6.0, 5.5),
    ],
)
def test_squares_of_scores_come_from_their_histogram(
    cumulative: list[float], total: float, count: float, expected: float
) -> None:
    squares = quality._score_squares(_side(cumulative, total, count))
    assert squares is not None
    assert float(squares[0]) == pytest.approx(expected)


def test_without_a_score_histogram_the_mean_assumes_scores_of_zero_or_one() -> None:
    assert quality._score_squares(_side(None, 3.9, 6.0)) is None


def _window(scores: np.ndarray, histogram: bool, variant: str = "v2") -> VariantWindow:
    cumulative = [float(np.sum(scores <= edge)) for edge in SCORE_BUCKETS]
    buckets = (*zip(SCORE_BUCKETS, cumulative, strict=True), (math.inf, float(len(scores))))
    return VariantWindow(
        variant=variant,
        eval_score=Histogram(buckets) if histogram else None,
        eval_score_sum=float(scores.sum()),
        eval_score_count=float(len(scores)),
    )


def _look(window: VariantWindow, look: int, state: SequentialState | None):  # type: ignore[no-untyped-def]
    return evaluate_sequential(
        MIN_SCORE, Window(60.0 * look, 60.0 * (look + 1), {"v2": window}), candidate="v2", stable="v1",
        state=state, false_rollback_rate=0.01, pricing=None, candidate_weight=50, final_step=True,
        config=NO_WARMUP,
    )  # fmt: skip


def _beta(rng: np.random.Generator, mean: float, sd: float, size: int) -> np.ndarray:
    common = mean * (1 - mean) / sd**2 - 1
    return rng.beta(mean * common, (1 - mean) * common, size)


def _clears_at(histogram: bool, looks: int = 80) -> int | None:
    """The look at which judge scores of mean 0.86 (sd 0.05), 20 a look, clear minScore 0.8."""
    rng = np.random.default_rng(9)
    state: SequentialState | None = None
    for look in range(looks):
        evaluation = _look(_window(_beta(rng, 0.86, 0.05, 20), histogram), look, state)
        state = load_state(json.loads(json.dumps(evaluation.state.to_status())))
        assert evaluation.verdict != FAIL
        if evaluation.verdict == PASS:
            return look
    return None


def test_fractional_scores_clear_sooner_with_their_histogram() -> None:
    """Scores of sd 0.05 vary a twentieth as much as 0/1 scores of the same mean: with the histogram's
    bound the candidate clears in far fewer looks (at this seed: look 8 against look 23). Not 20 times
    fewer: a bet on values >= 0 against a mean of 0.8 is capped (bernstein.LAMBDAS below 1)."""
    with_histogram, without = _clears_at(True), _clears_at(False)
    assert with_histogram is not None and without is not None
    assert with_histogram < without / 2


def test_a_window_without_the_histogram_adds_the_widest_bound() -> None:
    """A series lost mid-rollout must not understate the squares: that window adds the scores' sum."""
    rng = np.random.default_rng(4)
    first = _look(_window(_beta(rng, 0.86, 0.05, 20), True), 0, None)
    kept = float(first.state.values["quality.minScore@0.8.square"][0])
    scores = _beta(rng, 0.86, 0.05, 20)
    second = _look(_window(scores, False), 1, load_state(json.loads(json.dumps(first.state.to_status()))))
    assert float(second.state.values["quality.minScore@0.8.square"][0]) == pytest.approx(kept + scores.sum())


def _simulate(mean: float, spread: float, replicates: int, looks: int, seed: int) -> tuple[float, float]:
    """Shares rolled back and cleared by minScore 0.8 with Beta scores of this mean and sd, 30 a look,
    each version's histogram on the judge's buckets."""
    rng = np.random.default_rng(seed)
    nan = np.full(replicates, np.nan)
    state: SequentialState | None = None
    rolled = np.zeros(replicates, bool)
    cleared = np.zeros(replicates, bool)
    edges = np.array(SCORE_BUCKETS)
    for look in range(looks):
        scores = _beta(rng, mean, spread, replicates * 30).reshape(replicates, 30)
        cumulative = np.concatenate(
            [(scores[:, :, None] <= edges).sum(axis=1), np.full((replicates, 1), 30)], 1
        )
        side = SideBatch(
            nan, nan, nan, nan, scores.sum(axis=1), np.full(replicates, 30.0), nan, nan,
            eval_score=HistogramBatch(SCORE_BUCKETS, cumulative.astype(float)),
        )  # fmt: skip
        evaluation = evaluate_batch(
            MIN_SCORE, WindowBatch(60.0 * look, 60.0 * (look + 1), side, SideBatch.absent(replicates)),
            candidate="v2", stable="v1", state=state, false_rollback_rate=0.01, miss_rate=0.05, pricing=None,
            stable_required=False,
            final_step=np.ones(replicates, bool), config=NO_WARMUP,
        )  # fmt: skip
        state = evaluation.state
        rolled |= evaluation.verdict == int(FAIL)
        cleared |= (evaluation.verdict == int(PASS)) & ~rolled
    return float(rolled.mean()), float(cleared.mean())


def test_scores_at_the_rollback_level_are_rarely_rolled_back_by_simulation() -> None:
    """The rollback level is 0.85 (a quarter of the way from minScore to a perfect score); scores of sd
    0.3 lie mostly near 0 or 1, where the histogram's bound helps least."""
    rolled, _ = _simulate(0.85, 0.3, replicates=2000, looks=100, seed=21)
    assert rolled <= 0.01


def test_scores_at_the_bound_are_rarely_cleared_by_simulation() -> None:
    rolled, cleared = _simulate(0.8, 0.3, replicates=2000, looks=100, seed=22)
    assert cleared <= 0.05
    assert rolled >= 0.5


MAX_DROP = SLOs.model_validate({"quality": {"maxDropVsStable": 0.03}})
DROP_KEY = "quality.maxDropVsStable.scores@0.03"


def _drop_look(
    stable: np.ndarray, candidate: np.ndarray, histogram: bool, look: int, state: SequentialState | None
):  # type: ignore[no-untyped-def]
    """A look with judge scores only (no pass/fail verdicts): the drop goes the mean scores' route."""
    windows = {"v1": _window(stable, histogram, "v1"), "v2": _window(candidate, histogram, "v2")}
    return evaluate_sequential(
        MAX_DROP, Window(60.0 * look, 60.0 * (look + 1), windows), candidate="v2", stable="v1",
        state=state, false_rollback_rate=0.01, pricing=None, candidate_weight=50, final_step=True,
        config=NO_WARMUP,
    )  # fmt: skip


def _drop_decided(drop: float, histogram: bool, looks: int = 300):  # type: ignore[no-untyped-def]
    """(look, evaluation) at which judge scores of sd 0.05, 50 a look per version, stable's mean 0.86
    and the candidate's `drop` lower, are decided; each look's state through its JSON."""
    rng = np.random.default_rng(17)
    state: SequentialState | None = None
    for look in range(looks):
        evaluation = _drop_look(
            _beta(rng, 0.86, 0.05, 50), _beta(rng, 0.86 - drop, 0.05, 50), histogram, look, state
        )
        state = load_state(json.loads(json.dumps(evaluation.state.to_status())))
        if evaluation.verdict != Verdict.INCONCLUSIVE:
            return look, evaluation
    return None, None


def _decided_far_sooner(drop: float, verdict: Verdict) -> str:
    """The message of the look at which the drop is decided (as `verdict`) with both versions'
    histograms, after checking that it comes at most an eighth of the looks it takes without them."""
    look, evaluation = _drop_decided(drop, histogram=True)
    before, _ = _drop_decided(drop, histogram=False)
    assert look is not None and before is not None and evaluation is not None
    assert evaluation.verdict == verdict
    assert look * 8 <= before
    assert DROP_KEY + ".sSquare" in evaluation.state.values
    return next(r.message for r in evaluation.results if r.slo == "quality.maxDropVsStable")


def test_a_drop_of_mean_scores_rolls_back_far_sooner_with_their_histograms() -> None:
    """maxDropVsStable through the mean scores (a judge whose scores move without verdicts): with
    both versions' histograms bounding the squares (difference.py), a drop of 0.05 is rolled back at
    look 20 at this seed, against look 198 as if scores were 0 or 1."""
    message = _decided_far_sooner(0.05, FAIL)
    # The message's lower bound is the decision's: past the rollback level (half of maxDrop).
    lower = float(message.split("lower bound ")[1].split(",")[0])
    assert 0.015 < lower < 0.05


def test_mean_scores_without_a_drop_clear_far_sooner_with_their_histograms() -> None:
    """Look 12 at this seed, against look 186. The message shows the mean scores' drop and their
    test, not the judged failures' (a judge without verdicts has none)."""
    message = _decided_far_sooner(0.0, PASS)
    assert message.startswith("quality drop vs v1 0.0") and "cleared (mean score drop bounds -0." in message
    assert "failed share" not in message


def test_a_drop_counted_before_squares_were_kept_starts_at_the_widest_bound() -> None:
    """State from before the histograms (or before this version of the operator): the sums so far
    count as if every score were at the top of [0, 1], a bound that holds for any scores."""
    rng = np.random.default_rng(8)
    first = _drop_look(_beta(rng, 0.86, 0.05, 50), _beta(rng, 0.86, 0.05, 50), False, 0, None)
    saved = first.state.to_status()
    assert DROP_KEY + ".square" not in first.state.values
    stable, candidate = _beta(rng, 0.86, 0.05, 50), _beta(rng, 0.86, 0.05, 50)
    second = _drop_look(stable, candidate, True, 1, load_state(json.loads(json.dumps(saved))))
    values = second.state.values
    widest = float(first.state.values[DROP_KEY + ".total"][0])
    assert float(values[DROP_KEY + ".square"][0]) == pytest.approx(
        widest + float(np.sum(candidate**2)), rel=0.05
    )
    assert float(values[DROP_KEY + ".square"][0]) >= widest + float(np.sum(candidate**2))


def test_the_plan_forecasts_a_drop_with_the_variance_its_squares_allow() -> None:
    """Scores of sd 0.05 on both versions: the plan's forecast of further scores to clear the drop
    uses both versions' bounds on squares (at this seed 508 more scores, against 3,431 for 0/1
    scores; the judge's buckets are 0.01 wide near these scores, so the bound is about 4x the
    variance)."""
    forecasts: dict[bool, float | None] = {}
    for histogram in (True, False):
        rng = np.random.default_rng(3)
        state: SequentialState | None = None
        for look in range(3):
            evaluation = _drop_look(
                _beta(rng, 0.86, 0.05, 50), _beta(rng, 0.86, 0.05, 50), histogram, look, state
            )
            state = evaluation.state
        report = next(r for d in evaluation.batch.slos for r in d.tests if r.test.key == DROP_KEY)
        assert isinstance(report.test, MeanTest)
        forecasts[histogram] = plan._mean_plan(report, report.test, 0.05)
    with_histograms, without = forecasts[True], forecasts[False]
    assert with_histograms is not None and without is not None
    assert with_histograms * 4 < without


def _stacked(windows: list[VariantWindow]) -> SideBatch:
    ones = [SideBatch.from_window(window) for window in windows]

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(one, name) for one in ones])

    names = ("requests", "errors", "eval_passed", "eval_failed", "eval_score_sum", "eval_score_count")
    histograms = [one.eval_score for one in ones]
    assert all(h is not None for h in histograms)
    return SideBatch(
        **{name: cat(name) for name in names},
        input_tokens=cat("input_tokens"),
        output_tokens=cat("output_tokens"),
        eval_score=HistogramBatch(SCORE_BUCKETS, np.concatenate([h.cumulative for h in histograms if h])),
    )


def test_a_batch_of_one_and_a_batch_of_n_decide_a_drop_of_scores_the_same() -> None:
    """The scores' route on the e-processes of both versions: the same codes, states and message
    bounds for each replicate alone as within the batch."""
    rng = np.random.default_rng(23)
    drops = [0.0, 0.02, 0.05, 0.0, 0.08, 0.03]
    replicates = len(drops)
    common: dict[str, Any] = {
        "candidate": "v2", "stable": "v1", "false_rollback_rate": 0.01, "miss_rate": 0.05,
        "pricing": None, "stable_required": True, "config": NO_WARMUP,
    }  # fmt: skip
    batch_state: SequentialState | None = None
    singles: list[SequentialState | None] = [None] * replicates
    verdicts: set[int] = set()
    for look in range(12):
        sides = [
            (
                _window(_beta(rng, 0.86 - drop, 0.1, 80), True, "v2"),
                _window(_beta(rng, 0.86, 0.1, 120), True, "v1"),
            )
            for drop in drops
        ]
        window = WindowBatch(
            60.0 * look, 60.0 * (look + 1), _stacked([c for c, _ in sides]), _stacked([s for _, s in sides])
        )
        many = evaluate_batch(
            MAX_DROP, window, state=batch_state, final_step=np.ones(replicates, bool), **common
        )
        batch_state = many.state
        verdicts |= {int(v) for v in many.verdict}
        for i in range(replicates):
            alone = WindowBatch(
                60.0 * look, 60.0 * (look + 1), _stacked([sides[i][0]]), _stacked([sides[i][1]])
            )
            one = evaluate_batch(MAX_DROP, alone, state=singles[i], final_step=np.ones(1, bool), **common)
            singles[i] = one.state
            assert int(one.verdict[0]) == int(many.verdict[i])
            assert [int(d.how[0]) for d in one.slos] == [int(d.how[i]) for d in many.slos]
            for key, value in one.state.values.items():
                np.testing.assert_allclose(value[0], many.state.values[key][i], rtol=1e-12, equal_nan=True)
            scores_alone, scores_within = one.slos[0].tests[1], many.slos[0].tests[1]
            assert scores_alone.mean_bounds(0) == pytest.approx(scores_within.mean_bounds(i))
    assert verdicts >= {int(FAIL), int(PASS)}


def _verdicts(failed: np.ndarray, judged: np.ndarray) -> SideBatch:
    """A window of a binary judge's verdicts (its scores 1 for a pass, 0 for a fail)."""
    nan = np.full(len(failed), np.nan)
    passed = judged - failed
    return SideBatch(nan, nan, passed, failed, passed, judged, nan, nan)


def _routes(max_drop: float, *stable_windows: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """maxDropVsStable's route after stable's windows of (failed, judged) verdicts, one look each."""
    params: dict[str, np.ndarray] = {}
    key = f"quality.maxDropVsStable@{max_drop:g}"
    route = np.full(len(stable_windows[0][0]), np.nan)
    for look, (failed, judged) in enumerate(stable_windows):
        side = _verdicts(failed, judged)
        window = WindowBatch(60.0 * look, 60.0 * (look + 1), side, side)
        route, _ = quality._route(
            LookInput(window, "v2", "v1", True, params), key, max_drop, SequentialConfig()
        )
    return route


ONE = np.ones(1)


@pytest.mark.parametrize(
    ("max_drop", "failed", "judged", "expected"),
    [
        # 5 failures in 56 verdicts: stable surely fails more than 3% of the time (Wilson's one-sided
        # 95% bound from 4.4%): the failures' SPRT.
        (0.03, 5, 56, quality.FAILURES),
        # 1 in 56 (1.8%) could be a judge failing 10% of the time: no route yet (was the scores').
        (0.03, 1, 56, math.nan),
        (0.03, 3, 56, math.nan),
        (0.03, 0, 56, math.nan),
        # Never a failure in 56 is surely under a maxDrop of 10% (the bound reaches 4.6%): the scores.
        (0.1, 0, 56, quality.SCORES),
        # Too few verdicts to choose at all.
        (0.1, 0, 40, math.nan),
        # After 200 verdicts the estimate's side: 5 (2.5%) under 3%, 7 (3.5%) over it.
        (0.03, 5, 200, quality.SCORES),
        (0.03, 7, 200, quality.FAILURES),
        (0.03, 5, 199, math.nan),
    ],
)
def test_the_drops_route_waits_until_stables_failure_share_is_clearly_on_one_side_of_max_drop(
    max_drop: float, failed: float, judged: float, expected: float
) -> None:
    route = _routes(max_drop, (failed * ONE, judged * ONE))
    assert np.array_equal(route, [expected], equal_nan=True), route


def test_a_route_waiting_for_verdicts_is_chosen_on_the_pooled_ones_and_kept() -> None:
    first, more, later = (1 * ONE, 56 * ONE), (16 * ONE, 114 * ONE), (0 * ONE, 500 * ONE)
    assert np.isnan(_routes(0.03, first)).all()
    # 17 of 170 since the start: 10%, surely over 3%; verdicts after the choice change nothing.
    assert (_routes(0.03, first, more) == quality.FAILURES).all()
    assert (_routes(0.03, first, more, later) == quality.FAILURES).all()


def test_a_judge_failing_a_tenth_of_stables_answers_is_rarely_given_the_scores_route() -> None:
    # ~56 verdicts a look: under the estimate's side alone (no Wilson margin), 1.9% of these would
    # have gone the mean scores' way at the first look.
    rng = np.random.default_rng(11)
    looks = []
    for _ in range(5):
        judged = rng.poisson(56, 20_000).astype(float)
        looks.append((rng.binomial(judged.astype(int), 0.1).astype(float), judged))
    first = _routes(0.03, looks[0])
    assert 0.2 < np.isnan(first).mean() < 0.6 and not (first == quality.SCORES).any()
    # By the fifth look stable has about 280 verdicts, past stable_route_max_judged, where only a
    # share under 3% in 200 or more (a binomial tail of under 1 in 25,000) is the scores' side.
    routes = _routes(0.03, *looks)
    assert not np.isnan(routes).any() and (routes == quality.SCORES).mean() < 0.001


def test_a_route_still_waiting_loses_none_of_the_candidates_failures() -> None:
    # Stable fails 1 in 56, then 1 in 60: too close to maxDrop 0.03 to choose a route for two looks.
    spec = SLOs.model_validate({"quality": {"maxDropVsStable": 0.03}})
    state: SequentialState | None = None
    for look, stable_failed in enumerate((1.0, 1.0, 20.0)):
        stable = _verdicts(stable_failed * ONE, (56.0 if look == 0 else 60.0) * ONE)
        candidate = _verdicts(6 * ONE, 60 * ONE)
        evaluation = evaluate_batch(
            spec, WindowBatch(60.0 * look, 60.0 * (look + 1), candidate, stable), candidate="v2",
            stable="v1", state=state, false_rollback_rate=0.01, miss_rate=0.05, pricing=None,
            stable_required=True,
            final_step=np.ones(1, bool), config=NO_WARMUP,
        )  # fmt: skip
        state = evaluation.state
    assert state is not None
    assert state.values["param.quality.maxDropVsStable@0.03.route"][0] == quality.FAILURES
    # The failures counted every look (stable's share known from the first); the scores' test only
    # the look that chose its route.
    assert state.values["quality.maxDropVsStable@0.03.cExposure"][0] == 180.0
    assert state.values["quality.maxDropVsStable.scores@0.03.count"][0] == 60.0
