"""Two versions' histograms compared bucket by bucket (sprt.bucket_ratio_llr): stable's distribution,
and the same scaled by a factor, as a rate ratio per bucket. Cost's relative bound scales the tokens
per request; the percentile bounds' shift watch scales durations."""

from __future__ import annotations

import math

import numpy as np

from llmrollout.analysis.batch import HistogramBatch
from llmrollout.analysis.hypotheses import BoolArray, FloatArray, LookInput

# A bucket's H1 ratio is kept within these: one sparse bucket of stable's must not dominate the test.
RATIO_LIMITS = (0.2, 5.0)
# Added to each of stable's bucket counts before its shares are taken (no bucket has a share of 0).
BUCKET_PSEUDOCOUNT = 0.5
# The share of stable's requests that H1 must move across bucket edges (relative to H0) for the
# buckets to show a shift at all; below it the SLO is inconclusive with advice.
MIN_MOVED_SHARE = 0.01


def shifted_ratios(
    cumulative: FloatArray, edges: tuple[float, ...], scale: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per replicate: the H1 ratio of each bucket (stable's distribution scaled by `scale` against
    stable's own) and stable's share of each bucket, from stable's cumulative counts (a pseudocount
    per bucket keeps every share above 0). The scaled distribution's CDF at an edge is stable's at
    edge / scale, interpolated between edges linearly in log-odds against log tokens: exact for a
    log-logistic distribution and close for the unimodal ones tokens follow, where a straight line
    within a wide bucket would misplace the mass a shift moves across the edges several-fold."""
    counts = np.diff(cumulative, axis=1, prepend=0.0) + BUCKET_PSEUDOCOUNT
    shares = counts / counts.sum(axis=1, keepdims=True)
    ratios = np.full(shares.shape, np.nan)
    if len(edges) < 2:
        return ratios, shares
    logs = np.log(np.array(edges))
    for row in range(len(shares)):
        if not (math.isfinite(scale[row]) and scale[row] > 0 and np.all(np.isfinite(shares[row]))):
            continue
        cdf = np.cumsum(shares[row])[:-1]
        log_odds = np.log(cdf / (1 - cdf))
        at = logs - math.log(scale[row])
        # Linear in (log edge, log-odds), extended past the first and last edges by their segments.
        moved = np.interp(at, logs, log_odds)
        first = (log_odds[1] - log_odds[0]) / (logs[1] - logs[0])
        last = (log_odds[-1] - log_odds[-2]) / (logs[-1] - logs[-2])
        moved = np.where(at < logs[0], log_odds[0] + first * (at - logs[0]), moved)
        moved = np.where(at > logs[-1], log_odds[-1] + last * (at - logs[-1]), moved)
        shifted_cdf = 1 / (1 + np.exp(-moved))
        shifted = np.diff(np.concatenate([[0.0], shifted_cdf, [1.0]]))
        ratios[row] = np.clip(shifted / shares[row], *RATIO_LIMITS)
    return ratios, shares


def common_buckets(
    candidate: HistogramBatch, stable: HistogramBatch
) -> tuple[FloatArray, FloatArray, tuple[float, ...]]:
    """Both histograms' counts per bucket on the edges they share (cumulative counts at a shared edge
    are exact, so differing bucket layouts still compare)."""
    edges = tuple(sorted(set(candidate.edges) & set(stable.edges)))

    def per_bucket(hist: HistogramBatch) -> FloatArray:
        columns = [hist.edges.index(edge) for edge in edges] + [len(hist.edges)]
        cumulative = hist.cumulative[:, columns]
        counts: FloatArray = np.diff(cumulative, axis=1, prepend=0.0)
        return counts

    return per_bucket(candidate), per_bucket(stable), edges


def choose_rows(look: LookInput, key: str, value: FloatArray) -> None:
    """LookInput.choose for a parameter with a row per replicate: rows chosen already keep theirs."""
    kept = look.params.get(key)
    if kept is None or kept.shape != value.shape:
        look.params[key] = value
        return
    open_rows = np.isnan(kept).any(axis=1, keepdims=True)
    look.params[key] = np.where(open_rows, value, kept)


def moved_share(shares: FloatArray, nulls: FloatArray, ratios: FloatArray) -> FloatArray:
    """Per replicate: the share of stable's observations that H1 moves across bucket edges relative to
    H0. Below MIN_MOVED_SHARE the buckets are too coarse to tell the two apart."""
    moved: FloatArray = 0.5 * np.sum(shares * np.abs(ratios - nulls), axis=1)
    return moved


def chosen_shift(
    look: LookInput, key: str, shape: tuple[int, ...]
) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray]:
    """The H1 ratios, H0 ratios and stable's shares chosen for `key` (by choose_rows), for counts of
    `shape`, and per replicate whether they are all set. A histogram whose buckets changed since
    stable's distribution was chosen cannot be compared: then none is set."""
    ratios = look.params.get(f"{key}.ratios", np.full(shape, np.nan))
    nulls = look.params.get(f"{key}.nulls", np.full(shape, np.nan))
    shares = look.params.get(f"{key}.shares", np.full(shape, np.nan))
    if not ratios.shape == shape == nulls.shape == shares.shape:
        return np.ones(shape), np.ones(shape), np.full(shape, np.nan), np.zeros(shape[0], bool)
    chosen: BoolArray = np.all(np.isfinite(ratios), axis=1) & np.all(np.isfinite(nulls), axis=1)
    return ratios, nulls, shares, chosen
