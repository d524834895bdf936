"""The golden-set gate's paired test: exact where it can be, and false fails bounded by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from llmrollout.analysis.paired import (
    PairedItem,
    drop_exceeds,
    drop_lower_bound,
    exact_drop_p,
    golden_set_gate,
    mcnemar_exact_p,
    threshold_gate,
)


@pytest.mark.parametrize(("worse", "better"), [(0, 0), (1, 0), (5, 1), (9, 2), (20, 20), (30, 5), (700, 600)])
def test_mcnemar_matches_scipy_binomial_test(worse: int, better: int) -> None:
    n = worse + better
    expected = 1.0 if n == 0 else stats.binomtest(worse, n, 0.5, alternative="greater").pvalue
    assert mcnemar_exact_p(worse, better) == pytest.approx(expected, rel=1e-9)


def pairs(candidate: list[float], baseline: list[float]) -> list[PairedItem]:
    return [PairedItem(f"q{i}", c, b) for i, (c, b) in enumerate(zip(candidate, baseline, strict=True))]


# 60 items; stable passes 54. "Worse" fails 18 items stable passes; "same" swaps 3 each way.
STABLE = [1.0] * 54 + [0.0] * 6
SAME = [0.0] * 3 + [1.0] * 51 + [1.0] * 3 + [0.0] * 3
WORSE = [0.0] * 18 + [1.0] * 36 + [0.0] * 6


@pytest.mark.parametrize(
    ("candidate", "min_score", "max_drop", "passed", "method", "failure"),
    [
        (SAME, 0.8, 0.0, True, "mcnemar", None),
        (WORSE, None, 0.0, False, "mcnemar", "drop 0.300 vs stable exceeds maxDropVsStable 0.000"),
        (WORSE, 0.5, 0.05, False, "exact", "exceeds maxDropVsStable 0.050"),
        (WORSE, 0.5, 0.4, True, "exact", None),
        (WORSE, 0.6, None, True, "none", None),
        (WORSE, 0.65, None, False, "none", "score 0.600 < minScore 0.650"),
        (SAME, 0.95, 0.05, False, "exact", "score 0.900 < minScore 0.950"),
    ],
)
def test_gate_table(
    candidate: list[float],
    min_score: float | None,
    max_drop: float | None,
    passed: bool,
    method: str,
    failure: str | None,
) -> None:
    decision = golden_set_gate(
        pairs(candidate, STABLE), min_score=min_score, max_drop_vs_stable=max_drop, false_rollback_rate=0.01
    )
    assert decision.passed is passed
    assert decision.reason == ("GoldenSetPassed" if passed else "GoldenSetFailed")
    assert decision.method == method
    assert decision.n == 60
    if failure is None:
        assert decision.failures == ()
    else:
        assert any(failure in f for f in decision.failures), decision.failures
        assert "n=60" in decision.message


def test_worst_items_are_where_the_candidate_lost_most() -> None:
    items = [
        PairedItem("tie", 0.5, 0.5),
        PairedItem("small", 0.6, 0.7),
        PairedItem("big", 0.1, 0.9),
        PairedItem("won", 0.9, 0.2),
    ]
    decision = golden_set_gate(items, min_score=0.9, max_drop_vs_stable=0.0, false_rollback_rate=0.05)
    assert decision.worst_items == ("big", "small")
    assert decision.method == "betting"  # fractional scores


def test_threshold_gate_is_the_mean_against_the_bar() -> None:
    assert threshold_gate(["a", "b"], [1.0, 0.6], min_score=0.8).passed
    failed = threshold_gate(["a", "b", "c"], [1.0, 0.6, 0.3], min_score=0.8)
    assert not failed.passed
    assert failed.worst_items == ("c", "b")


@pytest.mark.parametrize(("worse", "better", "n", "tolerance"), [(12, 0, 60, 0.05), (9, 3, 40, 0.1)])
def test_exact_drop_p_is_the_largest_plausible_tail_by_scipy(
    worse: int, better: int, n: int, tolerance: float
) -> None:
    """The same p-value computed independently: scipy's Clopper-Pearson interval for the nuisance, and
    the tail as scipy's multinomial pmf summed over every (b, c) with b - c at least the observed."""
    alpha = 0.05
    observed = worse - better
    interval = stats.binomtest(better, n).proportion_ci(1 - alpha / 10, method="exact")
    tails = []
    for better_p in np.linspace(interval.low, min(interval.high, (1 - tolerance) / 2), 64):
        probabilities = [better_p + tolerance, better_p, 1 - tolerance - 2 * better_p]
        tail = sum(
            stats.multinomial.pmf([b, c, n - b - c], n, probabilities)
            for b in range(n + 1)
            for c in range(n + 1 - b)
            if b - c >= observed
        )
        tails.append(tail)
    expected = max(tails) + alpha / 10
    assert exact_drop_p(worse, better, n, tolerance, alpha) == pytest.approx(expected, rel=1e-3)
    assert exact_drop_p(worse, better, n, 0.5, alpha) == 1.0


def test_lower_bound_brackets_the_mean_and_tightens_with_n() -> None:
    rng = np.random.default_rng(7)
    small = list(rng.choice([-1.0, 0.0, 1.0], size=50, p=[0.05, 0.7, 0.25]))
    large = list(rng.choice([-1.0, 0.0, 1.0], size=800, p=[0.05, 0.7, 0.25]))
    assert -1.0 < drop_lower_bound(small, 0.05) < np.mean(small)
    assert drop_lower_bound(small, 0.05) < drop_lower_bound(large, 0.05) < 0.2
    assert drop_lower_bound([], 0.05) == -1.0
    # The decision and the bound agree: the test rejects a tolerance just under the bound, not over it.
    bound = drop_lower_bound(large, 0.05)
    assert drop_exceeds(large, bound - 0.01, 0.05)
    assert not drop_exceeds(large, bound + 0.01, 0.05)


def _simulate(
    rng: np.random.Generator, n: int, shift: float, binary: bool, runs: int, max_drop: float, alpha: float
) -> float:
    """Share of runs that fail a candidate whose true mean drop is `shift` (<= max_drop: healthy).

    Items differ in difficulty (Beta-distributed); both versions answer each independently, the
    candidate with its chance lowered by `shift`, so pairs are correlated through difficulty."""
    fails = 0
    for _ in range(runs):
        difficulty = rng.beta(4, 1.5, size=n)
        stable_p = difficulty
        candidate_p = np.clip(difficulty - shift, 0, 1)
        if binary:
            stable = (rng.random(n) < stable_p).astype(float)
            candidate = (rng.random(n) < candidate_p).astype(float)
        else:
            stable = np.clip(stable_p + rng.normal(0, 0.1, n), 0, 1)
            candidate = np.clip(candidate_p + rng.normal(0, 0.1, n), 0, 1)
        decision = golden_set_gate(
            pairs(list(candidate), list(stable)),
            min_score=None,
            max_drop_vs_stable=max_drop,
            false_rollback_rate=alpha,
        )
        fails += not decision.passed
    return fails / runs


@pytest.mark.parametrize(
    ("n", "binary", "max_drop", "shift"),
    [
        (60, True, 0.0, 0.0),  # identical candidates, exact McNemar
        (100, True, 0.05, 0.0),  # identical candidates, exact unconditional test
        (100, True, 0.05, 0.05),  # a candidate exactly at the tolerance: the hardest healthy case
        (30, True, 0.1, 0.1),  # a small set at the tolerance
        (100, False, 0.0, 0.0),  # identical candidates, fractional judge scores (betting)
        (100, False, 0.03, 0.03),  # fractional judge scores at the tolerance
    ],
)
def test_false_fail_rate_of_healthy_candidates_stays_under_false_rollback_rate(
    n: int, binary: bool, max_drop: float, shift: float
) -> None:
    alpha = 0.05  # large enough that 1,000 runs can tell a violation from noise
    rate = _simulate(np.random.default_rng(11), n, shift, binary, 1000, max_drop, alpha)
    # The mean of 1,000 Bernoulli(alpha) is under alpha + 2.3 standard errors with 99% probability.
    assert rate <= alpha + 2.3 * np.sqrt(alpha * (1 - alpha) / 1000)


@pytest.mark.parametrize(
    ("n", "binary", "max_drop"), [(100, True, 0.0), (100, True, 0.05), (100, False, 0.03)]
)
def test_a_clearly_worse_candidate_fails(n: int, binary: bool, max_drop: float) -> None:
    # Shifted by 0.4 where difficulty allows: a mean drop of about 0.35.
    rate = _simulate(np.random.default_rng(12), n, 0.4, binary, 200, max_drop, 0.01)
    assert rate >= 0.9


def test_a_scorer_outage_is_inconclusive_not_a_worse_candidate() -> None:
    items = [PairedItem(f"q{i}", 0.0, 0.0, scorer_failed=i < 3) for i in range(20)]
    decision = golden_set_gate(items, min_score=0.8, max_drop_vs_stable=0.05, false_rollback_rate=0.01)
    assert not decision.passed and decision.inconclusive
    assert decision.reason == "GoldenSetInconclusive"
    assert "the scorer failed on 3 of 20 pairs" in decision.message
    # At most 10% broken pairs: decided on the scores, where the broken ones count as 0.
    decided = golden_set_gate(items[2:], min_score=0.8, max_drop_vs_stable=0.05, false_rollback_rate=0.01)
    assert decided.reason == "GoldenSetFailed" and not decided.inconclusive


def test_no_items_is_inconclusive() -> None:
    decision = golden_set_gate([], min_score=0.5, max_drop_vs_stable=None, false_rollback_rate=0.01)
    assert decision.inconclusive and not decision.passed
    assert decision.failures == ("no items were scored",)


def test_to_status_is_camel_case_with_ids_only() -> None:
    decision = golden_set_gate(
        pairs(WORSE, STABLE), min_score=0.8, max_drop_vs_stable=0.0, false_rollback_rate=0.01
    )
    status = decision.to_status()
    assert status["reason"] == "GoldenSetFailed"
    assert status["score"] == 0.6 and status["stableScore"] == 0.9 and status["drop"] == 0.3
    assert status["method"] == "mcnemar" and status["n"] == 60
    assert status["worstItems"] == ["q0", "q1", "q10", "q11", "q12"]
    assert isinstance(status["pValue"], float) and status["pValue"] < 1e-4


def test_a_stable_outage_is_inconclusive_for_the_comparison_only() -> None:
    items = [PairedItem(f"q{i}", 1.0, 0.0, baseline_failed=i < 5) for i in range(20)]
    compared = golden_set_gate(items, min_score=0.8, max_drop_vs_stable=0.05, false_rollback_rate=0.01)
    assert compared.inconclusive
    assert "stable did not answer 5 of 20 items" in compared.message
    alone = golden_set_gate(items, min_score=0.8, max_drop_vs_stable=None, false_rollback_rate=0.01)
    assert alone.passed
