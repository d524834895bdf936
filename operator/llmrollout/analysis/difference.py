"""Anytime-valid tests of the difference of two versions' means (stable's minus the candidate's: a
drop), for values in [0, 1] whose variance comes from the data, from running sums only.

Each version gets the empirical-Bernstein supermartingale of bernstein.py in its additive form: for
values x and a level m in [0, 1], xi = x - m (or m - x) lies in [-1, 1], so

    prod_i exp(lambda xi_i - psi(lambda) xi_i^2),   psi(lambda) = -log(1 - lambda) - lambda

is a supermartingale while the mean is at most m (at least m), depending on the data only through
sum x, an upper bound on sum x^2, and n. With bets lambda <= 1/2, psi(lambda) <= lambda / 2, which
makes each bet's evidence monotone in the level (its derivative in m is at most n (2 psi - lambda)):
the evidence against "the mean is at most m" never grows with m, so bounds found by bisection hold.
(bernstein.py's relative form has no such property.)

A drop is two means with one nuisance, the candidate's mean m. Under "the drop is at most L", at the
true m both "stable's mean is at most m + L" and "the candidate's mean is at least m" hold, so the
product of their e-processes at that m is a supermartingale (the versions' requests are independent).
The infimum over every m is at most that product, so by Ville's inequality it reaches 1/a with
probability at most a, at any look. The product of two mixtures is a mixture over pairs of bets, and
each pair's exponent is a concave quadratic in m (between the points where stable's level m + L is
clipped to [0, 1], which are grid points), so on each cell of a finite grid it is at least the
smaller of its values at the cell's ends: the grid bounds the infimum from below. The grid decides
how tight that bound is, never whether it holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

# Bets from 1/2 (the boldest that keeps the evidence monotone in the level) down by halves.
LAMBDAS = 0.5 * 0.5 ** np.arange(8)
_PSI = -np.log1p(-LAMBDAS) - LAMBDAS
_LOG_WEIGHT = -math.log(len(LAMBDAS))
# The grid: coarse over the whole range, fine where the infimum lies (between the two estimates).
_COARSE, _FINE, _ZOOM = 17, 33, 17
# Halvings of a search's interval (ten standard errors, or out to -1 or 1): for messages.
_BISECTION_STEPS = 10


@dataclass(frozen=True)
class Sums:
    """One version's running sums of values in [0, 1]: their total, an upper bound on their sum of
    squares, and their count, per replicate."""

    total: FloatArray
    square: FloatArray
    count: FloatArray

    @classmethod
    def of(cls, total: ArrayLike, square: ArrayLike, count: ArrayLike) -> Sums:
        n = np.maximum(np.asarray(count, dtype=float), 0.0)
        # Counters read at slightly different instants can disagree; values in [0, 1] sum to at most
        # their count, and their squares to at most their sum.
        t = np.clip(np.asarray(total, dtype=float), 0.0, n)
        q = np.clip(np.asarray(square, dtype=float), t**2 / np.where(n > 0, n, 1.0), t)
        return cls(t, np.where(np.isfinite(q), q, t), n)

    def row(self, i: int) -> Sums:
        """Replicate i alone, as a batch of one."""
        return Sums(self.total[i : i + 1], self.square[i : i + 1], self.count[i : i + 1])

    def mean(self) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            mean: FloatArray = np.where(self.count > 0, self.total / self.count, 0.5)
        return mean

    def variance(self) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            second = np.where(self.count > 0, self.square / self.count, 0.25)
        variance: FloatArray = np.maximum(second - self.mean() ** 2, 0.0)
        return variance


def _exponents(sums: Sums, level: FloatArray, below: bool) -> FloatArray:
    """Each bet's log e-value against "the mean is at most `level`" (or at least, `below`), levels per
    replicate along the last axis, bets along a new one. Each is concave in the level."""
    t, q, n = (v[:, None, None] for v in (sums.total, sums.square, sums.count))
    m = level[..., None]
    signal = n * m - t if below else t - n * m
    exponents: FloatArray = LAMBDAS * signal - _PSI * np.maximum(q - 2 * m * t + n * m**2, 0.0)
    return exponents


def _log_sum_exp(exponents: FloatArray) -> FloatArray:
    """log sum exp over the last axis (np.logaddexp.reduce is many times slower)."""
    top = np.max(exponents, axis=-1)
    with np.errstate(invalid="ignore"):
        shifted = np.where(np.isfinite(top), top, 0.0)
        summed: FloatArray = shifted + np.log(np.sum(np.exp(exponents - shifted[..., None]), axis=-1))
    return summed


def _mixture(exponents: FloatArray) -> FloatArray:
    mixed: FloatArray = _LOG_WEIGHT + _log_sum_exp(exponents)
    return mixed


def log_e_above(sums: Sums, level: FloatArray) -> FloatArray:
    """Evidence against "the mean is at most `level`" (levels per replicate along the last axis);
    non-increasing in the level."""
    return _mixture(_exponents(sums, level, below=False))


def log_e_below(sums: Sums, level: FloatArray) -> FloatArray:
    """Evidence against "the mean is at least `level`"; non-decreasing in the level."""
    return _mixture(_exponents(sums, level, below=True))


def _grid(stable: Sums, candidate: Sums, level: FloatArray, low: FloatArray, high: FloatArray) -> FloatArray:
    """Sorted candidate means in [low, high] per replicate, dense where the infimum lies: between the
    candidate's estimate and stable's less the level, widened by four standard errors."""
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.sqrt(
            stable.variance() / np.maximum(stable.count, 1.0)
            + candidate.variance() / np.maximum(candidate.count, 1.0)
        )
    ends = np.stack([candidate.mean(), stable.mean() - level])
    near = np.min(ends, axis=0) - 4 * error - 1e-3
    far = np.max(ends, axis=0) + 4 * error + 1e-3
    steps = np.linspace(0.0, 1.0, _FINE)
    fine = near[:, None] + (far - near)[:, None] * steps
    coarse = low[:, None] + (high - low)[:, None] * np.linspace(0.0, 1.0, _COARSE)
    # Where stable's level m + level leaves [0, 1] and is clipped, a bet's exponent bends: a cell edge.
    bends = np.stack([-level, 1.0 - level], axis=1)
    points = np.clip(np.concatenate([coarse, fine, bends], axis=1), low[:, None], high[:, None])
    grid: FloatArray = np.sort(points, axis=1)
    return grid


def _levels(level: ArrayLike, replicates: int) -> FloatArray:
    return np.broadcast_to(np.asarray(level, dtype=float), (replicates,)).astype(float)


def _infimum(bets: Callable[[FloatArray], tuple[FloatArray, FloatArray]], grid: FloatArray) -> FloatArray:
    """A lower bound on the infimum over m of the product of two mixtures, given each one's bets'
    exponents at m (`bets`). The product is a mixture over pairs of bets, and each pair's exponent is
    concave in m (between the points where a level is clipped, which are on the grid): on a cell of
    the grid it is at least the smaller of its values at the cell's ends. The grid is refined once
    around its least point."""
    first, second = bets(grid)
    at_points = _mixture(first) + _mixture(second)
    least = np.argmin(at_points, axis=1)[:, None]
    last = grid.shape[1] - 1
    left = np.take_along_axis(grid, np.clip(least - 2, 0, last), axis=1)
    right = np.take_along_axis(grid, np.clip(least + 2, 0, last), axis=1)
    cells = np.sort(
        np.concatenate([grid, left + (right - left) * np.linspace(0.0, 1.0, _ZOOM)], axis=1), axis=1
    )
    first, second = bets(cells)
    pairs = first[..., :, None] + second[..., None, :]
    ends = np.minimum(pairs[:, :-1], pairs[:, 1:]).reshape(*pairs[:, 1:].shape[:2], -1)
    bound: FloatArray = np.min(2 * _LOG_WEIGHT + _log_sum_exp(ends), axis=1)
    return bound


def log_e_drop_above(stable: Sums, candidate: Sums, level: ArrayLike) -> FloatArray:
    """Evidence that stable's mean minus the candidate's is above `level`: a lower bound on the
    infimum, over the candidate's mean m, of the evidence against "stable's mean is at most m + level
    and the candidate's at least m"."""
    drop = _levels(level, len(candidate.count))
    low, high = np.clip(-drop, 0.0, 1.0), np.ones_like(drop)
    return _infimum(
        lambda m: (
            _exponents(stable, np.clip(m + drop[:, None], 0.0, 1.0), below=False),
            _exponents(candidate, m, below=True),
        ),
        _grid(stable, candidate, drop, low, high),
    )


def log_e_drop_below(stable: Sums, candidate: Sums, level: ArrayLike) -> FloatArray:
    """Evidence that the drop is below `level`: against "stable's mean is at least m + level and the
    candidate's at most m", the infimum over m bounded from below as in log_e_drop_above (with the
    roles of the two versions' monotonicity swapped). A level above 1, which no pair of means
    reaches, is refuted outright."""
    drop = _levels(level, len(candidate.count))
    low, high = np.zeros_like(drop), np.clip(1.0 - drop, 0.0, 1.0)
    value = _infimum(
        lambda m: (
            _exponents(stable, np.clip(m + drop[:, None], 0.0, 1.0), below=True),
            _exponents(candidate, m, below=False),
        ),
        _grid(stable, candidate, drop, low, high),
    )
    return np.where(drop > 1.0, np.inf, value)


def _bisect(
    shows: Callable[[FloatArray], NDArray[np.bool_]], weakest: FloatArray, strongest: FloatArray
) -> FloatArray:
    """The level nearest `strongest` at which `shows` holds, searched from `weakest`; NaN where it
    does not hold even there. Only levels at which it holds are returned."""
    shown, unshown = weakest.copy(), strongest.copy()
    held = shows(shown)
    for _ in range(_BISECTION_STEPS):
        middle = (shown + unshown) / 2
        proven = shows(middle)
        shown, unshown = np.where(proven, middle, shown), np.where(proven, unshown, middle)
    return np.where(held, shown, np.nan)


def _bound(
    shows: Callable[[FloatArray], NDArray[np.bool_]], estimate: FloatArray, reach: FloatArray, outer: float
) -> FloatArray:
    """A bound on the drop: searched first within `reach` of the estimate (where it lies unless the
    evidence is thin), then out to `outer` (-1 or 1) where it is not shown even at that reach."""
    near = np.clip(estimate - reach, -1.0, 1.0)
    found = _bisect(shows, near, estimate)
    far = np.isnan(found)
    if np.any(far):
        found = np.where(far, _bisect(shows, np.full_like(near, outer), near), found)
    bound: FloatArray = np.where(np.isnan(found), outer, found)
    return bound


def drop_bounds(
    stable: Sums, candidate: Sums, lower_miscoverage: float, upper_miscoverage: float
) -> tuple[FloatArray, FloatArray]:
    """[lower, upper] on the drop: the largest level it is shown to be above at `lower_miscoverage`,
    and the smallest it is shown to be below at `upper_miscoverage` (bisection on evidence that is
    monotone in the level), -1 and 1 where nothing is shown."""
    above, below = math.log(1.0 / lower_miscoverage), math.log(1.0 / upper_miscoverage)
    estimate = stable.mean() - candidate.mean()
    # Ten standard errors from the estimate the evidence is nearly always past the thresholds used
    # here; where it is not (thin evidence), the search goes on to -1 or 1.
    error = np.sqrt(
        stable.variance() / np.maximum(stable.count, 1.0)
        + candidate.variance() / np.maximum(candidate.count, 1.0)
    )
    reach = 10 * error + 1e-3
    lower = _bound(lambda level: log_e_drop_above(stable, candidate, level) >= above, estimate, reach, -1.0)
    upper = _bound(lambda level: log_e_drop_below(stable, candidate, level) >= below, estimate, -reach, 1.0)
    return lower, upper
