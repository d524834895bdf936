"""The vectorised threshold and Kayenta policies against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from bench.decisions.model import PRICING, SLO_SPEC, TTFT_EDGES
from bench.decisions.policies import (
    KAYENTA_TOLERANCE,
    Thresholds,
    histogram_p95,
    mann_whitney_classify,
    threshold_statistics,
    threshold_verdicts,
    variant_window,
)
from bench.decisions.simulate import WindowArrays
from llmrollout.analysis import evaluate_variant, histogram_quantile, worst


def _random_windows(rng: np.random.Generator, n: int) -> WindowArrays:
    requests = rng.poisson(rng.choice([0.5, 3, 30], n)).astype(float)
    errors = rng.binomial(requests.astype(int), rng.choice([0.0, 0.02, 0.3], n)).astype(float)
    ok = requests - errors
    bins = rng.multinomial(ok.astype(int), [1 / (len(TTFT_EDGES) + 1)] * (len(TTFT_EDGES) + 1))
    judged = rng.binomial(ok.astype(int), 0.2)
    failed = rng.binomial(judged, 0.15).astype(float)
    return WindowArrays(
        requests=requests,
        errors=errors,
        ttft=np.cumsum(bins[:, :-1], axis=1).astype(float),
        ttft_count=ok,
        in_tokens=ok * 500.0,
        out_tokens=ok * rng.uniform(100, 1200, n),
        passed=judged - failed,
        failed=failed,
        in_hist=np.zeros((n, 9)),
        out_hist=np.zeros((n, 9)),
    )


def test_threshold_verdicts_are_evaluate_variants() -> None:
    rng = np.random.default_rng(5)
    n = 400
    candidate, stable = _random_windows(rng, n), _random_windows(rng, n)
    verdicts = threshold_verdicts(threshold_statistics(candidate, stable), Thresholds())
    for row in range(n):
        results = evaluate_variant(
            SLO_SPEC,
            variant_window("candidate", candidate, row),
            PRICING,
            baseline=variant_window("stable", stable, row),
        )
        assert verdicts[row] == int(worst(r.verdict for r in results)), row


def test_histogram_p95_is_promqls() -> None:
    rng = np.random.default_rng(6)
    windows = _random_windows(rng, 300)
    values, _ = histogram_p95(windows.ttft, windows.ttft_count)
    for row in range(300):
        hist = variant_window("c", windows, row).ttft
        assert hist is not None
        expected = histogram_quantile(0.95, hist)
        if expected is None:
            assert math.isnan(values[row])
        else:
            assert values[row] == pytest.approx(expected)


def _kayenta_reference(x: np.ndarray, y: np.ndarray, increase: bool) -> int:
    """High/Low from scipy's asymptotic, tie- and continuity-corrected Mann-Whitney test, at the
    shift of tolerance x |Hodges-Lehmann estimate| (Kayenta's classification rule)."""
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) == 0 or len(y) == 0:
        return -1
    if len(x) == len(y) and np.array_equal(np.sort(x), np.sort(y)):
        return 0
    if len(np.unique(np.concatenate([x, y]))) == 1:
        return 0
    estimate = np.median(np.subtract.outer(x, y))
    shift = KAYENTA_TOLERANCE * abs(estimate) * (1 if increase else -1)
    alternative = "greater" if increase else "less"
    p = mannwhitneyu(x - shift, y, alternative=alternative, method="asymptotic", use_continuity=True).pvalue
    ratio = 1.0 if np.mean(y) == 0 else np.mean(x) / np.mean(y)
    significant = p < 0.01  # one side of a two-sided 98% interval
    return int(significant and (ratio >= 1 if increase else ratio <= 1))


@pytest.mark.parametrize("increase", [True, False])
def test_kayenta_classification_matches_scipy(increase: bool) -> None:
    rng = np.random.default_rng(7)
    rows, width = 300, 12
    shift = rng.choice([0.0, 0.5, 1.5], (rows, 1)) * (1 if increase else -1)
    x = np.round(rng.normal(5, 1, (rows, width)) + shift, 1)
    y = np.round(rng.normal(5, 1, (rows, width)), 1)
    x[rng.random((rows, width)) < 0.1] = np.nan
    y[rng.random((rows, width)) < 0.1] = np.nan
    got = mann_whitney_classify(x, y, increase)
    expected = [_kayenta_reference(x[r], y[r], increase) for r in range(rows)]
    assert got.tolist() == expected
    assert 0 < sum(expected) < rows
