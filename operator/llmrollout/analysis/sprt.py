"""Wald's sequential probability ratio test on counts, for arrays of replicates.

Every SLO test of the sequential method reduces a window to counts: events (errors, failed evals,
requests above a bucket edge) among exposures (requests, judged answers, histogram observations).
Two shapes of test use them:

- one-sample: the candidate's events are Binomial(exposure, p); H0: p = p0 against H1: p = p1 > p0.
  It states an absolute bound: p1 is the bound (errorRate.max, 5% above a p95 bound) and p0 a level
  comfortably inside it.
- two-sample, conditional: given a window's total events X, the candidate's share is
  Binomial(X, q(rho)) with q(rho) = w rho / (w rho + 1 - w), w the candidate's share of the exposure
  and rho the ratio of the candidate's event rate to stable's. H0: rho = rho0 against H1: rho = rho1.
  A shared, time-varying baseline (an outage hitting both, a load spike) cancels out, and w may
  change from window to window (the steps) since it is fixed before the window's events happen.

The log-likelihood ratio (LLR) of H1 to H0 adds up over windows. The test rolls back when it reaches
log((1 - beta) / alpha) and clears when it falls to log(beta / (1 - alpha)). Under H0 the likelihood
ratio is a martingale, so by Ville's inequality it ever reaches (1 - beta) / alpha with probability
at most alpha / (1 - beta), however often it is looked at and even if it keeps running after
clearing; symmetrically for a miss under H1. Both hypotheses are composite in the usual way: the
family has a monotone likelihood ratio, so a rate below p0 (or rho0) rolls back less often and one
above p1 (or rho1) is missed less often.

Everything here is numpy on arrays of any shape; the operator passes arrays of one replicate.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

OPEN, CLEARED, ROLLED_BACK = 0, -1, 1


def boundaries(alpha: float, beta: float) -> tuple[float, float]:
    """(rollback, clear) thresholds on the LLR for error rates alpha (false rollback) and beta (miss)."""
    if not (0 < alpha < 1 and 0 < beta < 1 and alpha + beta < 1):
        raise ValueError(f"error rates must be in (0, 1) and sum below 1, not alpha={alpha}, beta={beta}")
    return math.log((1 - beta) / alpha), math.log(beta / (1 - alpha))


def usable(*values: ArrayLike) -> BoolArray:
    """Where every value is a finite count >= 0 (NaN marks a missing series)."""
    ok = np.ones(np.broadcast(*[np.asarray(v) for v in values]).shape, dtype=bool)
    for value in values:
        array = np.asarray(value, dtype=float)
        with np.errstate(invalid="ignore"):
            ok &= np.isfinite(array) & (array >= 0)
    return ok


def binomial_llr(events: ArrayLike, exposure: ArrayLike, p0: ArrayLike, p1: ArrayLike) -> FloatArray:
    """One-sample LLR of p1 against p0 for `events` among `exposure`; 0 where the counts are unusable."""
    k = np.asarray(events, dtype=float)
    n = np.asarray(exposure, dtype=float)
    ok = usable(k, n) & usable(p0, p1)
    k = np.where(ok, np.minimum(k, n), 0.0)
    n = np.where(ok, n, 0.0)
    a = np.clip(np.asarray(p0, dtype=float), 1e-12, 1 - 1e-12)
    b = np.clip(np.asarray(p1, dtype=float), 1e-12, 1 - 1e-12)
    llr: FloatArray = k * np.log(b / a) + (n - k) * np.log((1 - b) / (1 - a))
    return np.where(ok, llr, 0.0)


def candidate_share(weight: ArrayLike, ratio: ArrayLike) -> FloatArray:
    """q: the chance that an event is the candidate's, given its exposure share and rate ratio."""
    w = np.asarray(weight, dtype=float)
    r = np.asarray(ratio, dtype=float)
    share: FloatArray = w * r / (w * r + 1.0 - w)
    return share


def ratio_llr(
    candidate_events: ArrayLike,
    stable_events: ArrayLike,
    candidate_exposure: ArrayLike,
    stable_exposure: ArrayLike,
    rho0: ArrayLike,
    rho1: ArrayLike,
) -> FloatArray:
    """Two-sample conditional LLR of rho1 against rho0; 0 where either side is unusable or unexposed."""
    c = np.asarray(candidate_events, dtype=float)
    s = np.asarray(stable_events, dtype=float)
    ec = np.asarray(candidate_exposure, dtype=float)
    es = np.asarray(stable_exposure, dtype=float)
    ok = usable(c, s, ec, es) & usable(rho0, rho1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok &= (ec > 0) & (es > 0)
        w = np.where(ok, ec / np.where(ok, ec + es, 1.0), 0.5)
    q0 = np.clip(candidate_share(w, np.where(ok, rho0, 1.0)), 1e-12, 1 - 1e-12)
    q1 = np.clip(candidate_share(w, np.where(ok, rho1, 1.0)), 1e-12, 1 - 1e-12)
    c = np.where(ok, c, 0.0)
    s = np.where(ok, s, 0.0)
    llr: FloatArray = c * np.log(q1 / q0) + s * np.log((1 - q1) / (1 - q0))
    return np.where(ok, llr, 0.0)


def bucket_ratio_llr(
    candidate_counts: ArrayLike, stable_counts: ArrayLike, nulls: ArrayLike, ratios: ArrayLike
) -> FloatArray:
    """Two-sample conditional LLR over a histogram's buckets (the last axis): each bucket is a
    two-sample test of its own rate ratio, H0 `nulls` against H1 `ratios` (stable's distribution
    shifted by as much as each hypothesis says, bucket by bucket), and the buckets' LLRs add up.
    Exposures are each version's observations in the window; 0 where either version's counts are
    unusable."""
    c = np.asarray(candidate_counts, dtype=float)
    s = np.asarray(stable_counts, dtype=float)
    ok = np.all(usable(c, s), axis=-1, keepdims=True)
    c, s = np.where(ok, c, 0.0), np.where(ok, s, 0.0)
    exposure_c = np.broadcast_to(c.sum(axis=-1, keepdims=True), c.shape)
    exposure_s = np.broadcast_to(s.sum(axis=-1, keepdims=True), s.shape)
    per_bucket = ratio_llr(c, s, exposure_c, exposure_s, nulls, ratios)
    llr: FloatArray = per_bucket.sum(axis=-1)
    return llr


def bucket_ratio_drift(
    nulls: ArrayLike, ratios: ArrayLike, shares: ArrayLike, true_ratios: ArrayLike, weight: float
) -> float:
    """The expected LLR per candidate observation of bucket_ratio_llr at candidate share `weight`,
    when stable's observations fall in the buckets with `shares` and the candidate's rate in each
    bucket is `true_ratios` times stable's."""
    return bucket_ratio_moments(nulls, ratios, shares, true_ratios, weight)[0]


def bucket_ratio_moments(
    nulls: ArrayLike, ratios: ArrayLike, shares: ArrayLike, true_ratios: ArrayLike, weight: float
) -> tuple[float, float]:
    """bucket_ratio_llr's mean and variance per candidate observation: the buckets' tests add up,
    each on its own Poisson stream of events."""
    rows = zip(np.ravel(nulls), np.ravel(ratios), np.ravel(shares), np.ravel(true_ratios), strict=True)
    each = [ratio_moments(float(n), float(r), float(t), weight, float(p)) for n, r, p, t in rows if p > 0]
    return float(sum(m for m, _ in each)), float(sum(v for _, v in each))


def decide(
    llr: ArrayLike, rollback_at: ArrayLike, clear_at: ArrayLike, rollback_evidence: ArrayLike | None = None
) -> NDArray[np.int64]:
    """ROLLED_BACK where the evidence for a rollback (the LLR, or a mixture's: see mixture_llr) reached
    the rollback threshold, CLEARED where the LLR fell to the clearing one, else OPEN."""
    value = np.asarray(llr, dtype=float)
    back = value if rollback_evidence is None else np.asarray(rollback_evidence, dtype=float)
    codes = np.where(back >= rollback_at, ROLLED_BACK, np.where(value <= clear_at, CLEARED, OPEN))
    return codes.astype(np.int64)


def steeper(null: ArrayLike, alternative: ArrayLike, multiple: float, *, rate: bool) -> FloatArray:
    """A second alternative `multiple` times as far from H0 as H1 on the log scale (rate ratios, or
    rates of a one-sample test, which stay below 1: at most halfway from H1 to 1)."""
    h0 = np.clip(np.asarray(null, dtype=float), 1e-12, None)
    h1 = np.asarray(alternative, dtype=float)
    steep: FloatArray = h0 * (h1 / h0) ** multiple
    if rate:
        steep = np.minimum(steep, (1.0 + h1) / 2)
    return steep


def mixture_llr(llr: ArrayLike, steep_llr: ArrayLike, weight: float) -> FloatArray:
    """The log of `weight` x H1's likelihood ratio plus (1 - weight) x a steeper alternative's. Under
    H0 the mixture is a martingale with mean 1 too, so rolling back when it reaches (1 - beta) / alpha
    keeps Ville's bound, while a regression far beyond H1 gets there at the steeper alternative's
    pace; one at H1 pays log(1 / weight) more evidence."""
    at_h1 = np.asarray(llr, dtype=float) + math.log(weight)
    mixed: FloatArray = np.logaddexp(at_h1, np.asarray(steep_llr, dtype=float) + math.log1p(-weight))
    return mixed


def truncate(llr: ArrayLike) -> NDArray[np.int64]:
    """The horizon's rule, fixed in advance: a test still open then goes the way its evidence leans
    (the sign of the LLR; a tie clears, since the candidate showed nothing against it).

    A two-sample test's LLR compares the versions within each window, so a shift of stable's rate
    between steps hardly moves either error rate. The LLR of its counts pooled over the rollout would
    tell candidates like stable from those at H1 better while stable's rate stays put (stable's
    events at the first steps would then estimate its rate at the last too): measured on the
    benchmark's identical candidates (10 requests/s, a 60-minute horizon) 2.2% rolled back against
    3.1%. But in a simulated ramp (tests/unit/analysis/test_analysis_sprt.py) a shift of stable's
    failure share from 10% to 11% after the first steps took its false rollbacks from 2.1% to 3.9%,
    and one from 11% to 10% its misses at H1 from 4.0% to 9.0%; rates drift that much within an hour
    as the requests' mix changes."""
    value = np.asarray(llr, dtype=float)
    return np.where(value > 0, ROLLED_BACK, CLEARED).astype(np.int64)


def drift(p0: float, p1: float, true_p: float) -> float:
    """The expected LLR per exposure of a one-sample test when the true rate is `true_p`."""
    return moments(p0, p1, true_p)[0]


def ratio_drift(rho0: float, rho1: float, true_rho: float, weight: float, event_rate: float) -> float:
    """The expected LLR per unit of candidate exposure of a two-sample test at candidate exposure
    share `weight`, when stable's events happen at `event_rate` per exposure."""
    return ratio_moments(rho0, rho1, true_rho, weight, event_rate)[0]


def moments(p0: float, p1: float, true_p: float) -> tuple[float, float]:
    """The mean and variance per exposure of a one-sample test's LLR when the true rate is `true_p`."""
    a, b, p = (min(max(x, 1e-12), 1 - 1e-12) for x in (p0, p1, true_p))
    up, down = math.log(b / a), math.log((1 - b) / (1 - a))
    return p * up + (1 - p) * down, p * (1 - p) * (up - down) ** 2


def ratio_moments(
    rho0: float, rho1: float, true_rho: float, weight: float, event_rate: float
) -> tuple[float, float]:
    """The mean and variance per unit of candidate exposure of a two-sample test's LLR: events come
    as a Poisson stream (compound Poisson: the variance is the rate times each event's mean square)."""
    q0, q1, q = (float(candidate_share(weight, r)) for r in (rho0, rho1, true_rho))
    up, down = math.log(q1 / q0), math.log((1 - q1) / (1 - q0))
    # Events per unit of candidate exposure: its own plus stable's, whose exposure is (1-w)/w as large.
    events = event_rate * (true_rho + (1 - weight) / weight)
    return events * (q * up + (1 - q) * down), events * (q * up**2 + (1 - q) * down**2)


def horizon_rollback_chance(llr: float, mean: float, variance: float, exposure: float) -> float:
    """The chance that truncate() rolls back a test whose LLR is `llr` now and gains `exposure` more
    by the horizon with these moments per exposure (the LLR about normal; ignoring the boundaries,
    which only ever decide earlier)."""
    centre = llr + mean * exposure
    spread = math.sqrt(max(variance * exposure, 0.0))
    if spread == 0:
        return 1.0 if centre > 0 else 0.0
    return 0.5 * math.erfc(-centre / (spread * math.sqrt(2)))


def expected_exposure(
    p0: float, p1: float, true_p: float, rollback_at: float, clear_at: float
) -> float | None:
    """Wald's approximation of the expected exposure (requests, judged answers) a one-sample test
    needs to decide when the true rate is `true_p`; None when the drift is too small to say."""
    return _wald_expected(drift(p0, p1, true_p), rollback_at, clear_at)


def expected_ratio_exposure(
    rho0: float,
    rho1: float,
    true_rho: float,
    weight: float,
    event_rate: float,
    rollback_at: float,
    clear_at: float,
) -> float | None:
    """The same for a two-sample test: expected candidate exposure when stable's events happen at
    `event_rate` per exposure and the candidate's exposure share is `weight`."""
    if not (0 < weight < 1) or event_rate <= 0:
        return None
    return _wald_expected(ratio_drift(rho0, rho1, true_rho, weight, event_rate), rollback_at, clear_at)


def _wald_expected(drift: float, rollback_at: float, clear_at: float) -> float | None:
    if not math.isfinite(drift) or abs(drift) < 1e-15:
        return None
    return (rollback_at if drift > 0 else clear_at) / drift
