import math
import random

import numpy as np
import pytest

from llmrollout.analysis.batch import HistogramBatch, WindowBatch
from llmrollout.analysis.observations import Histogram, VariantWindow, Window
from llmrollout.analysis.quantiles import histogram_quantile, interpolated_count_above

EDGES = (0.05, 0.1, 0.25, 0.5, 0.8, 1.0, 2.5)


def random_histogram(rng: random.Random) -> Histogram:
    counts = [rng.choice([0, 0, 1, 3, 10]) for _ in range(len(EDGES) + 1)]
    cumulative = np.cumsum(counts).astype(float).tolist()
    return Histogram(tuple(zip((*EDGES, math.inf), cumulative, strict=True)))


def test_quantile_is_promqls_histogram_quantile() -> None:
    rng = random.Random(3)
    for _ in range(500):
        hist = random_histogram(rng)
        expected = histogram_quantile(0.95, hist)
        got = float(HistogramBatch.from_histogram(hist).quantile(0.95)[0])
        assert (expected is None and math.isnan(got)) or got == pytest.approx(expected)


def test_share_above_interpolates_like_the_scalar_code() -> None:
    rng = random.Random(5)
    for _ in range(300):
        hist = random_histogram(rng)
        value = rng.choice([0.03, 0.3, 0.8, 0.9, 2.0])
        expected = interpolated_count_above(hist, value)
        share = float(HistogramBatch.from_histogram(hist).share_above(np.array([value]))[0])
        if hist.count == 0:
            assert math.isnan(share)
        else:
            assert expected is not None and share * hist.count == pytest.approx(expected)


def test_count_above_is_exact_and_nan_off_the_edges() -> None:
    batch = HistogramBatch(EDGES, np.array([[1, 2, 3, 4, 5, 6, 7, 10], [0, 0, 0, 0, 0, 0, 0, 0]], float))
    assert batch.count_above(0.5).tolist() == [6.0, 0.0]
    assert np.isnan(batch.count_above(0.6)).all()


def test_a_missing_series_is_nan_never_zero() -> None:
    window = Window(0, 60, {"v2": VariantWindow("v2", requests=10, errors=None)})
    batch = WindowBatch.from_window(window, "v2", "v1")
    assert batch.candidate.requests.tolist() == [10.0]
    assert np.isnan(batch.candidate.errors).all()
    assert np.isnan(batch.stable.requests).all() and batch.stable.ttft is None


def test_tail_share_is_exact_for_an_exponential_tail_where_a_line_is_not() -> None:
    scale = 0.2
    cumulative = [1000 * (1 - math.exp(-edge / scale)) for edge in EDGES]
    batch = HistogramBatch(EDGES, np.array([[*cumulative, 1000.0]]))
    inside = np.array([0.7])  # within the (0.5, 0.8] bucket
    assert float(batch.tail_share(inside)[0]) == pytest.approx(math.exp(-0.7 / scale), rel=1e-9)
    assert float(batch.share_above(inside)[0]) > 1.25 * math.exp(-0.7 / scale)
