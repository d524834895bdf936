"""costPerRequest.maxIncreaseVsStable: tokens per request, stable's distribution against the candidate's,
bucket by bucket. Tables for the pieces, and the error rates by simulation."""

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from llmrollout.analysis import sprt
from llmrollout.analysis.batch import HistogramBatch, SideBatch, WindowBatch
from llmrollout.analysis.hypotheses import SequentialConfig
from llmrollout.analysis.observations import Histogram, VariantWindow, Window
from llmrollout.analysis.sequential import (
    SequentialEvaluation,
    SequentialState,
    evaluate_batch,
    evaluate_sequential,
    load_state,
)
from llmrollout.analysis.shifts import RATIO_LIMITS, shifted_ratios
from llmrollout.analysis.slos import cost, needed_fields, rollback_test_count
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import Pricing, SLOs

PASS, HOLD, FAIL = Verdict.PASS, Verdict.INCONCLUSIVE, Verdict.FAIL

TOKEN_EDGES = (10.0, 20.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0, 5000.0)
OUTPUT_MEAN, OUTPUT_SHAPE = 300.0, 2.0
OUTPUT_ONLY = Pricing(input_per_million_tokens=0.0, output_per_million_tokens=1.0)
NO_WARMUP = SequentialConfig(warmup_seconds=0.0)


def relative(max_increase: float = 0.1, **extra: Any) -> SLOs:
    return SLOs.model_validate({"costPerRequest": {"maxIncreaseVsStable": max_increase, **extra}})


@pytest.mark.parametrize(
    ("counts", "ratios", "expected_sign"),
    [
        # Stable's distribution, H0 everywhere: nothing either way.
        ([[10, 10]], [[1.0, 1.0]], 0),
        # The candidate's counts lean to the bucket H1 says grows: evidence for H1.
        ([[2, 18]], [[0.5, 1.5]], 1),
        # ... and to the one H1 says shrinks: evidence for H0.
        ([[18, 2]], [[0.5, 1.5]], -1),
    ],
)
def test_bucket_ratio_llr_leans_the_way_the_counts_do(
    counts: list[list[float]], ratios: list[list[float]], expected_sign: int
) -> None:
    stable = np.array([[10.0, 10.0]])
    llr = sprt.bucket_ratio_llr(np.array(counts, float), stable, 1.0, np.array(ratios))
    assert np.sign(np.round(llr[0], 12)) == expected_sign


def test_one_bucket_is_the_two_sample_ratio_test() -> None:
    one = sprt.bucket_ratio_llr(np.array([[7.0]]), np.array([[3.0]]), 1.0, np.array([[1.5]]))
    two_sample = sprt.ratio_llr(7.0, 3.0, 7.0, 3.0, 1.0, 1.5)
    assert one[0] == pytest.approx(float(two_sample))


def test_a_missing_bucket_adds_nothing() -> None:
    llr = sprt.bucket_ratio_llr(
        np.array([[5.0, math.nan]]), np.array([[5.0, 5.0]]), 1.0, np.array([[2.0, 0.5]])
    )
    assert llr[0] == 0.0


def _gamma_cumulative(requests: float, mean: float, shape: float = OUTPUT_SHAPE) -> list[float]:
    cdf = stats.gamma(shape, scale=mean / shape).cdf
    return [requests * float(cdf(edge)) for edge in TOKEN_EDGES] + [requests]


@pytest.mark.parametrize("scale", [1.0, 1.1, 1.5])
def test_shifted_ratios_describe_stable_scaled(scale: float) -> None:
    cumulative = np.array([_gamma_cumulative(1e6, OUTPUT_MEAN)])
    ratios, shares = shifted_ratios(cumulative, TOKEN_EDGES, np.array([scale]))
    assert shares.sum() == pytest.approx(1.0)
    truth = np.diff(np.array([0.0, *_gamma_cumulative(1.0, OUTPUT_MEAN * scale)]))
    # Linear interpolation within buckets: close to the scaled distribution, not exact; a ratio at its
    # limit (a bucket stable hardly reaches) is clipped on purpose.
    unclipped = (ratios[0] > RATIO_LIMITS[0]) & (ratios[0] < RATIO_LIMITS[1])
    assert np.abs(ratios[0] * shares[0] - truth)[unclipped].max() < 0.02
    if scale == 1.0:
        assert np.allclose(ratios, 1.0)
    else:
        assert ratios[0, 0] < 1.0 < ratios[0, -2]


def test_the_relative_bound_needs_token_histograms_and_counts_two_tests() -> None:
    assert set(needed_fields(relative())) >= {"input_tokens_per_request", "output_tokens_per_request"}
    assert rollback_test_count(relative()) == 2
    assert rollback_test_count(relative(maxUSD=0.01)) == 3
    only_usd = SLOs.model_validate({"costPerRequest": {"maxUSD": 0.01}})
    assert "output_tokens_per_request" not in needed_fields(only_usd)


def test_a_cost_slo_needs_some_bound() -> None:
    with pytest.raises(ValueError, match="set maxUSD, maxIncreaseVsStable or both"):
        SLOs.model_validate({"costPerRequest": {}})


def _window(requests: float, mean: float, name: str) -> VariantWindow:
    cumulative = _gamma_cumulative(requests, mean)
    buckets = (*zip(TOKEN_EDGES, cumulative[:-1], strict=True), (math.inf, requests))
    return VariantWindow(
        variant=name,
        requests=requests,
        errors=0.0,
        input_tokens=100.0 * requests,
        output_tokens=mean * requests,
        input_tokens_per_request=Histogram((*((e, 0.0) for e in TOKEN_EDGES), (math.inf, requests))),
        output_tokens_per_request=Histogram(buckets),
    )


def _look(window: Window, state: SequentialState | None) -> SequentialEvaluation:
    """The operator's look at the final step, v2 at 50% against v1, cost bounded relative to stable."""
    return evaluate_sequential(
        relative(),
        window,
        candidate="v2",
        stable="v1",
        state=state,
        false_rollback_rate=0.01,
        pricing=OUTPUT_ONLY,
        candidate_weight=50,
        final_step=True,
        config=NO_WARMUP,
    )


def _operator_rollout(candidate_mean: float, looks: int = 30) -> SequentialEvaluation:
    state: SequentialState | None = None
    evaluation = None
    for look in range(looks):
        window = Window(
            60.0 * look,
            60.0 * (look + 1),
            {"v2": _window(500, candidate_mean, "v2"), "v1": _window(500, OUTPUT_MEAN, "v1")},
        )
        evaluation = _look(window, state)
        state = load_state(json.loads(json.dumps(evaluation.state.to_status())))
        if evaluation.verdict != HOLD:
            break
    assert evaluation is not None
    return evaluation


def test_a_token_regression_rolls_back_naming_cost_and_a_like_candidate_clears() -> None:
    regressed = _operator_rollout(OUTPUT_MEAN * 1.3)
    assert regressed.verdict == FAIL
    assert "costPerRequest" in regressed.reason and "output tokens per request" in regressed.reason
    healthy = _operator_rollout(OUTPUT_MEAN)
    assert healthy.verdict == PASS
    result = next(r for r in healthy.results if r.slo == "costPerRequest")
    assert "bucket by bucket" in result.message


def test_missing_token_histograms_hold_and_name_the_series() -> None:
    window = Window(
        0.0,
        60.0,
        {
            "v2": VariantWindow(
                variant="v2",
                requests=500.0,
                input_tokens=5e4,
                output_tokens=15e4,
                missing={
                    "output_tokens_per_request": 'vllm:request_generation_tokens_bucket{model_name="v2"}'
                },
            ),
            "v1": _window(500, OUTPUT_MEAN, "v1"),
        },
    )
    evaluation = _look(window, None)
    assert evaluation.verdict != PASS
    result = next(r for r in evaluation.results if r.slo == "costPerRequest")
    assert "request_generation_tokens_bucket" in result.message


def _simulate(candidate_scale: float, replicates: int, looks: int, seed: int) -> tuple[float, float]:
    """Shares of replicates rolled back and cleared by costPerRequest.maxIncreaseVsStable 0.1 (output
    tokens only priced, so the design point is output tokens x1.1) with gamma tokens per request,
    multinomial bucket counts, at 50% candidate weight."""
    rng = np.random.default_rng(seed)
    nan = np.full(replicates, np.nan)
    state: SequentialState | None = None
    rolled = np.zeros(replicates, bool)
    cleared = np.zeros(replicates, bool)

    def side(requests: np.ndarray, mean: float) -> SideBatch:
        probabilities = np.diff(np.array([0.0, *_gamma_cumulative(1.0, mean)]))
        counts = rng.multinomial(requests.astype(np.int64), probabilities).astype(float)
        tokens = rng.gamma(OUTPUT_SHAPE * np.maximum(requests, 1), mean / OUTPUT_SHAPE)
        histogram = HistogramBatch(TOKEN_EDGES, np.cumsum(counts, axis=1))
        zeros = np.zeros(replicates)
        return SideBatch(
            requests, zeros, nan, nan, nan, nan, zeros, tokens,
            input_tokens_per_request=histogram, output_tokens_per_request=histogram,
        )  # fmt: skip

    for look in range(looks):
        requests = rng.poisson(150, (2, replicates)).astype(float)
        evaluation = evaluate_batch(
            relative(),
            WindowBatch(
                60.0 * look,
                60.0 * (look + 1),
                side(requests[0], OUTPUT_MEAN * candidate_scale),
                side(requests[1], OUTPUT_MEAN),
            ),
            candidate="v2",
            stable="v1",
            state=state,
            false_rollback_rate=0.01,
            miss_rate=0.05,
            pricing=OUTPUT_ONLY,
            stable_required=True,
            final_step=np.ones(replicates, bool),
            config=NO_WARMUP,
        )
        state = evaluation.state
        rolled |= evaluation.verdict == int(FAIL)
        cleared |= (evaluation.verdict == int(PASS)) & ~rolled
    return float(rolled.mean()), float(cleared.mean())


def test_identical_token_distributions_are_rarely_rolled_back_by_simulation() -> None:
    rolled, cleared = _simulate(1.0, replicates=3000, looks=40, seed=11)
    # falseRollbackRate 1% over the relative bound's two tests.
    assert rolled <= 0.01
    assert cleared >= 0.95


def test_tokens_at_the_relative_bound_are_rarely_promoted_by_simulation() -> None:
    rolled, cleared = _simulate(1.1, replicates=3000, looks=120, seed=12)
    assert cleared <= 0.05
    assert rolled >= 0.9


def test_a_third_of_the_way_to_the_bound_is_rarely_rolled_back_by_simulation() -> None:
    """Cost +3.5% against a +10% bound: H0 allows 30% of the increase, so a candidate a little
    short of it clears nearly always."""
    rolled, cleared = _simulate(1.035, replicates=3000, looks=120, seed=13)
    assert rolled <= 0.05
    assert cleared >= 0.9


def test_answers_all_inside_one_wide_bucket_are_inconclusive_with_advice() -> None:
    """OTel's power-of-4 token buckets and answers of nearly one length: a +10% cost moves almost no
    request across an edge, so no window could tell H1 from H0."""
    edges = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0)

    def narrow(name: str, requests: float) -> VariantWindow:
        hist = Histogram((*((e, requests if e >= 256 else 0.0) for e in edges), (math.inf, requests)))
        return VariantWindow(
            variant=name,
            requests=requests,
            input_tokens=0.0,
            output_tokens=150.0 * requests,
            input_tokens_per_request=hist,
            output_tokens_per_request=hist,
        )

    state: SequentialState | None = None
    for look in range(4):
        window = Window(60.0 * look, 60.0 * (look + 1), {"v2": narrow("v2", 500), "v1": narrow("v1", 500)})
        evaluation = _look(window, state)
        state = evaluation.state
    result = next(r for r in evaluation.results if r.slo == "costPerRequest")
    assert result.verdict == HOLD
    assert "too coarse" in result.message and "add bucket edges around 160" in result.message


BOTH_PRICED = Pricing(input_per_million_tokens=1.0, output_per_million_tokens=2.0)


def _token_side(
    input_cumulative: list[float], output_cumulative: list[float], tokens: tuple[float, float]
) -> SideBatch:
    edges = (10.0, 100.0)
    nan = np.full(1, np.nan)
    requests = np.array([output_cumulative[-1]])
    return SideBatch(
        requests, np.zeros(1), nan, nan, nan, nan, np.array([tokens[0]]), np.array([tokens[1]]),
        input_tokens_per_request=HistogramBatch(edges, np.array([input_cumulative])),
        output_tokens_per_request=HistogramBatch(edges, np.array([output_cumulative])),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("input_cumulative", "output_cumulative", "tokens", "expected"),
    [
        # Two requests, input tokens within 10 and output within 100 each: each type at its upper
        # edges, (1e-6 sqrt(2 x 10^2) + 2e-6 sqrt(2 x 100^2))^2.
        (
            [2.0, 2.0, 2.0],
            [0.0, 2.0, 2.0],
            (15.0, 150.0),
            (1e-6 * math.sqrt(200) + 2e-6 * math.sqrt(2e4)) ** 2,
        ),
        # The token counter above what the buckets' upper edges allow (300 output tokens > 2 x 100): the
        # histogram misses something, so the widest bound, cap x the total cost.
        ([2.0, 2.0, 2.0], [0.0, 2.0, 2.0], (15.0, 300.0), 1e-2 * (15e-6 + 600e-6)),
        # A missing histogram: the widest bound too.
        ([2.0, 2.0, 2.0], [math.nan, math.nan, math.nan], (15.0, 150.0), 1e-2 * (15e-6 + 300e-6)),
        # A request above the last edge is bounded by the tokens that cost the cap: here more than the
        # widest bound, which then applies.
        ([1.0, 1.0, 1.0], [0.0, 0.0, 1.0], (5.0, 4000.0), 1e-2 * (5e-6 + 8000e-6)),
    ],
)
def test_squares_of_cost_per_request_come_from_the_token_histograms(
    input_cumulative: list[float],
    output_cumulative: list[float],
    tokens: tuple[float, float],
    expected: float,
) -> None:
    side = _token_side(input_cumulative, output_cumulative, tokens)
    usd = cost._usd(side, BOTH_PRICED)
    squares = cost._usd_squares(side, BOTH_PRICED, usd, cap=1e-2)
    assert squares is not None
    assert float(squares[0]) == pytest.approx(expected, rel=1e-9)


def test_without_token_histograms_the_mean_cost_assumes_the_widest_variance() -> None:
    nan = np.full(1, np.nan)
    side = SideBatch(np.array([10.0]), np.zeros(1), nan, nan, nan, nan, np.array([100.0]), np.array([300.0]))
    assert cost._usd_squares(side, BOTH_PRICED, cost._usd(side, BOTH_PRICED), cap=1e-2) is None


def _max_usd_rollout(histograms: bool, looks: int = 60) -> int | None:
    """The look at which maxUSD 0.0004 clears for output tokens (gamma, mean 300, priced 1 USD per
    million) 25% under it, 200 requests a look; None if it never does."""
    slos = SLOs.model_validate({"costPerRequest": {"maxUSD": 0.0004}})
    rng = np.random.default_rng(5)
    state: SequentialState | None = None
    for look in range(looks):
        tokens = rng.gamma(OUTPUT_SHAPE, OUTPUT_MEAN / OUTPUT_SHAPE, 200)
        counts = np.histogram(tokens, bins=(0.0, *TOKEN_EDGES, math.inf))[0]
        hist = Histogram((*zip(TOKEN_EDGES, np.cumsum(counts)[:-1].tolist(), strict=True), (math.inf, 200.0)))
        window = VariantWindow(
            variant="v2", requests=200.0, errors=0.0, input_tokens=0.0, output_tokens=float(tokens.sum()),
            output_tokens_per_request=hist if histograms else None,
            input_tokens_per_request=Histogram(((math.inf, 200.0),)) if histograms else None,
        )  # fmt: skip
        evaluation = evaluate_sequential(
            slos, Window(60.0 * look, 60.0 * (look + 1), {"v2": window}), candidate="v2", stable="v1",
            state=state, false_rollback_rate=0.01, pricing=OUTPUT_ONLY, candidate_weight=50,
            final_step=True, config=NO_WARMUP,
        )  # fmt: skip
        state = load_state(json.loads(json.dumps(evaluation.state.to_status())))
        assert evaluation.verdict != FAIL
        if evaluation.verdict == PASS:
            return look
    return None


def test_max_usd_clears_sooner_with_token_histograms_than_without() -> None:
    """The histograms bound the variance (bernstein.py); without them the mean test must assume costs
    of 0 or 10 x maxUSD (at this seed: the third look against the twelfth)."""
    with_histograms, without = _max_usd_rollout(True), _max_usd_rollout(False)
    assert with_histograms is not None and without is not None
    assert with_histograms < without / 2


def test_a_mean_cost_counted_before_squares_were_kept_reads_the_past_at_the_widest_bound() -> None:
    slos = SLOs.model_validate({"costPerRequest": {"maxUSD": 0.0004}})
    state = SequentialState(candidate="v2", stable="v1", replicates=1, started_at=0.0, last_window_end=60.0)
    state.values.update({"costPerRequest.total": np.array([0.03]), "costPerRequest.count": np.array([100.0])})
    window = _window(200, OUTPUT_MEAN, "v2")
    evaluation = evaluate_sequential(
        slos, Window(60.0, 120.0, {"v2": window}), candidate="v2", stable="v1", state=state,
        false_rollback_rate=0.01, pricing=OUTPUT_ONLY, candidate_weight=50, final_step=True, config=NO_WARMUP,
    )  # fmt: skip
    side = SideBatch.from_window(window)
    usd = cost._usd(side, OUTPUT_ONLY)
    now = cost._usd_squares(side, OUTPUT_ONLY, usd, cap=0.004)
    assert now is not None
    expected = 0.004 * 0.03 + float(now[0])
    assert float(evaluation.state.values["costPerRequest.square"][0]) == pytest.approx(expected)


def test_a_max_usd_of_zero_rolls_back_the_first_window_that_costs_anything() -> None:
    slos = SLOs.model_validate({"costPerRequest": {"maxUSD": 0}})
    evaluation = evaluate_sequential(
        slos, Window(0.0, 60.0, {"v2": _window(50, OUTPUT_MEAN, "v2")}), candidate="v2", stable="v1",
        state=None, false_rollback_rate=0.01, pricing=OUTPUT_ONLY, candidate_weight=50, final_step=True,
        config=NO_WARMUP,
    )  # fmt: skip
    assert evaluation.verdict == FAIL
    assert "costPerRequest" in evaluation.reason
