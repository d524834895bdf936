"""Anytime-valid tests of a mean whose variance comes from the data, from running sums only.

confidence.py bounds a mean of values in [0, cap] as if each value were 0 or cap: the most a mean can
vary, which for costs per request (a cap of ten times maxUSD) is about a hundred times what tokens
per request actually vary. Where a histogram of the values exists, each observation is at most its
bucket's upper edge, which bounds the window's sum of squares; this module turns that bound into
evidence.

The empirical-Bernstein supermartingale (Howard, Ramdas, McAuliffe and Sekhon, Ann. Stat. 2021,
arXiv:1810.08240, section 4): for xi >= -1 and lambda in [0, 1),

    exp(lambda xi - psi(lambda) xi^2) <= 1 + lambda xi,   psi(lambda) = -log(1 - lambda) - lambda

(Fan, Grama and Liu 2015). With xi = (x - m) / m for values x >= 0, E[xi] <= 0 whenever the mean is
at most m, so the product over requests of exp(lambda xi_i - psi(lambda) xi_i^2) is a nonnegative
supermartingale under "the mean is at most m" (and with xi = (m - x) / (cap - m) for values at most
cap, under "the mean is at least m"). It depends on the data only through sum x, sum x^2 and n, and
an upper bound on sum x^2 only makes it smaller. An equal-weight mixture over a grid of lambdas keeps
the property; Ville's inequality then bounds the chance that it ever reaches 1/a by a, at every look.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

# Bets from bold to timid, each half the one before: the mixture is within log(8) of the best of them,
# and one of them is within a factor 0.9 of the best bet on any evidence between.
LAMBDAS = np.array([0.9, 0.45, 0.225, 0.1125, 0.05625, 0.028125, 0.0140625, 0.00703125])
_PSI = -np.log1p(-LAMBDAS) - LAMBDAS
_LOG_WEIGHT = -math.log(len(LAMBDAS))
_BISECTION_STEPS = 64


def _mixture(signal: FloatArray, spread: FloatArray) -> FloatArray:
    """log of the mixture over LAMBDAS of exp(lambda signal - psi(lambda) spread), element by element."""
    exponents = LAMBDAS * signal[..., None] - _PSI * np.maximum(spread, 0.0)[..., None]
    mixed: FloatArray = _LOG_WEIGHT + np.logaddexp.reduce(exponents, axis=-1)
    return mixed


def log_e_above(total: ArrayLike, square: ArrayLike, count: ArrayLike, level: ArrayLike) -> FloatArray:
    """Evidence that the mean of values >= 0 is above `level`: the log e-value against "the mean is at
    most `level`", from their sum, an upper bound on their sum of squares, and their count."""
    t, q, n, m = (np.asarray(v, dtype=float) for v in (total, square, count, level))
    with np.errstate(divide="ignore", invalid="ignore"):
        signal = t / m - n
        spread = q / m**2 - 2 * t / m + n
        value = _mixture(signal, spread)
    # At most 0 for values >= 0 means every value is 0: any positive sum refutes it outright.
    degenerate = np.where(t > 0, np.inf, 0.0)
    return np.where(n > 0, np.where(m > 0, value, degenerate), 0.0)


def log_e_below(
    total: ArrayLike, square: ArrayLike, count: ArrayLike, level: ArrayLike, cap: float
) -> FloatArray:
    """Evidence that the mean of values in [0, cap] is below `level`: the log e-value against "the
    mean is at least `level`"."""
    t, q, n, m = (np.asarray(v, dtype=float) for v in (total, square, count, level))
    room = cap - m
    with np.errstate(divide="ignore", invalid="ignore"):
        signal = (n * m - t) / room
        spread = (q - 2 * m * t + n * m**2) / room**2
        value = _mixture(signal, spread)
    # At least cap for values <= cap means every value is cap: any sum short of n x cap refutes it.
    degenerate = np.where(t < n * cap, np.inf, 0.0)
    return np.where(n > 0, np.where(room > 0, value, degenerate), 0.0)


def lower_bounds(total: ArrayLike, square: ArrayLike, count: ArrayLike, miscoverage: float) -> FloatArray:
    """The smallest mean that `log_e_above` does not reject at `miscoverage`, in [0, the estimate]:
    for messages; decisions test their own level directly."""
    t, q, n = (np.asarray(v, dtype=float) for v in (total, square, count))
    floor = math.log(1.0 / miscoverage)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where(n > 0, t / n, 0.0)
    rejected, accepted = np.zeros_like(estimate), estimate
    for _ in range(_BISECTION_STEPS):
        middle = (rejected + accepted) / 2
        reject = (middle <= 0) | (log_e_above(t, q, n, middle) >= floor)
        rejected, accepted = np.where(reject, middle, rejected), np.where(reject, accepted, middle)
    return np.where((n > 0) & (t > 0), rejected, 0.0)


def upper_bounds(
    total: ArrayLike, square: ArrayLike, count: ArrayLike, miscoverage: float, cap: float
) -> FloatArray:
    """The largest mean that `log_e_below` does not reject at `miscoverage`, in [the estimate, cap]."""
    t, q, n = (np.asarray(v, dtype=float) for v in (total, square, count))
    floor = math.log(1.0 / miscoverage)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where(n > 0, np.minimum(t / n, cap), cap)
    accepted, rejected = estimate, np.full_like(estimate, cap)
    for _ in range(_BISECTION_STEPS):
        middle = (accepted + rejected) / 2
        reject = (middle >= cap) | (log_e_below(t, q, n, middle, cap) >= floor)
        rejected, accepted = np.where(reject, middle, rejected), np.where(reject, accepted, middle)
    return np.where(n > 0, rejected, cap)


def histogram_squares(cumulative: FloatArray, uppers: FloatArray, total: FloatArray) -> FloatArray:
    """An upper bound on the sum of squares of a histogram's observations: each at its bucket's upper
    edge. `cumulative` per replicate and bucket (the last one +Inf), `uppers` each bucket's upper edge
    (the +Inf bucket's: what the caller knows bounds every observation), `total` the observations'
    sum from its own counter. NaN where the histogram is missing or that sum is more than the upper
    edges allow: the histogram then misses observations and bounds nothing."""
    counts = np.maximum(np.diff(cumulative, axis=1, prepend=0.0), 0.0)
    with np.errstate(invalid="ignore"):
        covered = np.isfinite(cumulative[:, -1]) & ~(total > np.sum(counts * uppers, axis=1) * (1 + 1e-12))
    squares: FloatArray = np.where(covered, np.sum(counts * uppers**2, axis=1), np.nan)
    return squares
