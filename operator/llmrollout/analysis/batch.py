"""Windows of many replicates at once, as arrays: what the sequential method's kernels read.

The operator judges one rollout (a batch of one, built from a Window by `from_window`); the decision
benchmark judges thousands of simulated ones with the very same code. NaN marks a missing series:
it is never read as zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from llmrollout.analysis.observations import Histogram, VariantWindow, Window

FloatArray = NDArray[np.float64]
NAN = math.nan


@dataclass(frozen=True)
class HistogramBatch:
    """Cumulative bucket counts: `cumulative[:, i]` counts observations <= edges[i]; the last column
    (one more than there are edges) is the total (+Inf). Edges are finite and increasing."""

    edges: tuple[float, ...]
    cumulative: FloatArray  # (replicates, len(edges) + 1)

    @property
    def total(self) -> FloatArray:
        total: FloatArray = self.cumulative[:, -1]
        return total

    def has_edge(self, edge: float) -> bool:
        return edge in self.edges

    def count_above(self, edge: float) -> FloatArray:
        """Observations above `edge` exactly; NaN when the histogram has no such edge."""
        if edge not in self.edges:
            return np.full(len(self.cumulative), NAN)
        above: FloatArray = self.total - self.cumulative[:, self.edges.index(edge)]
        return above

    def edge_at_or_below(self, bound: float) -> float | None:
        below = [edge for edge in self.edges if edge <= bound]
        return below[-1] if below else None

    def share_above(self, value: FloatArray) -> FloatArray:
        """The share of observations above `value` (per replicate), interpolated linearly within the
        bucket as histogram_quantile does; NaN without observations or above the last finite edge."""
        edges = np.array((0.0, *self.edges))
        counts = np.concatenate([np.zeros((len(self.cumulative), 1)), self.cumulative[:, :-1]], axis=1)
        result = np.full(len(self.cumulative), NAN)
        for row in range(len(self.cumulative)):
            total = self.cumulative[row, -1]
            if not total > 0 or not math.isfinite(value[row]) or value[row] > edges[-1]:
                continue
            below = float(np.interp(value[row], edges, counts[row]))
            result[row] = (total - below) / total
        return result

    def tail_share(self, value: FloatArray) -> FloatArray:
        """The share above `value` with the survival function interpolated log-linearly within the
        bucket: exact for an exponential tail, and far closer than a straight line for the steep tails
        of latency distributions, where a linear one overstates the share above a point inside a
        bucket several-fold. Linear where the bucket's upper edge has nothing above it."""
        linear = self.share_above(value)
        edges = np.array((0.0, *self.edges))
        totals = self.cumulative[:, -1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            survival = np.concatenate(
                [np.ones((len(totals), 1)), 1 - self.cumulative[:, :-1] / totals], axis=1
            )
        result = linear.copy()
        for row in range(len(self.cumulative)):
            x = value[row]
            if not np.isfinite(linear[row]) or not x > 0:
                continue
            upper = int(np.searchsorted(edges, x))
            if upper == 0 or upper >= len(edges):
                continue
            s_low, s_high = survival[row, upper - 1], survival[row, upper]
            if s_low > 0 and s_high > 0:
                fraction = (x - edges[upper - 1]) / (edges[upper] - edges[upper - 1])
                result[row] = math.exp(math.log(s_low) + fraction * (math.log(s_high) - math.log(s_low)))
        return result

    def quantile(self, q: float) -> FloatArray:
        """histogram_quantile(q) per replicate, as PromQL computes it (linear within the bucket, the
        highest finite edge when the rank falls in +Inf); NaN without observations."""
        if not self.edges:
            return np.full(len(self.cumulative), NAN)
        cumulative = np.maximum.accumulate(np.nan_to_num(self.cumulative, nan=0.0), axis=1)
        total = cumulative[:, -1]
        rank = q * total
        index = np.argmax(cumulative >= rank[:, None], axis=1)
        finite = len(self.edges)
        uppers = np.array(self.edges)
        lowers = np.array((0.0, *self.edges[:-1]))
        i = np.minimum(index, finite - 1)
        below = np.where(i > 0, cumulative[np.arange(len(i)), np.maximum(i - 1, 0)], 0.0)
        inside = cumulative[np.arange(len(i)), i] - below
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = np.where(inside > 0, (rank - below) / inside, 1.0)
        value = lowers[i] + (uppers[i] - lowers[i]) * fraction
        value = np.where(index >= finite, uppers[-1], value)
        ok = np.isfinite(self.total) & (self.total > 0)
        return np.where(ok, value, NAN)

    @classmethod
    def from_histogram(cls, hist: Histogram | None, edges: tuple[float, ...] | None = None) -> HistogramBatch:
        """A batch of one. Without a usable histogram every count is NaN."""
        if hist is None or not hist.buckets or not math.isinf(hist.buckets[-1][0]):
            own = edges or ()
            return cls(own, np.full((1, len(own) + 1), NAN))
        finite = tuple(upper for upper, _ in hist.buckets if math.isfinite(upper))
        row = np.array([[cumulative for _, cumulative in hist.buckets]], dtype=float)
        return cls(finite, row)


@dataclass(frozen=True)
class SideBatch:
    """One version's window for every replicate; each array has shape (replicates,)."""

    requests: FloatArray
    errors: FloatArray
    eval_passed: FloatArray
    eval_failed: FloatArray
    eval_score_sum: FloatArray
    eval_score_count: FloatArray
    input_tokens: FloatArray
    output_tokens: FloatArray
    ttft: HistogramBatch | None = None
    latency: HistogramBatch | None = None
    input_tokens_per_request: HistogramBatch | None = None
    output_tokens_per_request: HistogramBatch | None = None
    eval_score: HistogramBatch | None = None
    # User feedback (thumbs up / down); None reads as missing, like NaN.
    feedback_up: FloatArray | None = None
    feedback_down: FloatArray | None = None
    custom: Mapping[str, FloatArray] = field(default_factory=dict)
    # Field -> the series looked for and not found (a batch of one: the operator's), for messages.
    missing: Mapping[str, str] = field(default_factory=dict)

    @property
    def replicates(self) -> int:
        return len(self.requests)

    def feedback(self) -> tuple[FloatArray, FloatArray]:
        """(thumbs up, thumbs down), NaN where not read."""
        nan = np.full(self.replicates, NAN)
        up = nan if self.feedback_up is None else self.feedback_up
        down = nan if self.feedback_down is None else self.feedback_down
        return up, down

    @classmethod
    def absent(cls, replicates: int = 1) -> SideBatch:
        nan = np.full(replicates, NAN)
        return cls(nan, nan, nan, nan, nan, nan, nan, nan)

    @classmethod
    def from_window(cls, window: VariantWindow | None) -> SideBatch:
        if window is None:
            return cls.absent()

        def one(value: float | None) -> FloatArray:
            return np.array([NAN if value is None else float(value)])

        return cls(
            requests=one(window.requests),
            errors=one(window.errors),
            eval_passed=one(window.eval_passed),
            eval_failed=one(window.eval_failed),
            eval_score_sum=one(window.eval_score_sum),
            eval_score_count=one(window.eval_score_count),
            input_tokens=one(window.input_tokens),
            output_tokens=one(window.output_tokens),
            ttft=_histogram(window.ttft),
            latency=_histogram(window.latency),
            input_tokens_per_request=_histogram(window.input_tokens_per_request),
            output_tokens_per_request=_histogram(window.output_tokens_per_request),
            eval_score=_histogram(window.eval_score),
            feedback_up=one(window.feedback_up),
            feedback_down=one(window.feedback_down),
            custom={name: one(value) for name, value in window.custom.items()},
            missing=dict(window.missing),
        )


def _histogram(hist: Histogram | None) -> HistogramBatch | None:
    return None if hist is None else HistogramBatch.from_histogram(hist)


@dataclass(frozen=True)
class WindowBatch:
    """One analysis window [start, end] (unix seconds, the same for every replicate)."""

    start: float
    end: float
    candidate: SideBatch
    stable: SideBatch

    @property
    def replicates(self) -> int:
        return self.candidate.replicates

    @classmethod
    def from_window(cls, window: Window, candidate: str, stable: str) -> WindowBatch:
        return cls(
            start=window.start,
            end=window.end,
            candidate=SideBatch.from_window(window.variants.get(candidate)),
            stable=SideBatch.from_window(window.variants.get(stable)),
        )
