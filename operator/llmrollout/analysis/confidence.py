"""Anytime-valid confidence sequences for a mean in [0, 1], from running sums and counts only.

The operator never sees individual requests, only per-window sums (errors, eval-score sums,
exceedance counts, costs) and counts. What makes a valid sequential bound possible from sums alone:
for any Y in [0, 1] with mean mu and any p in (0, 1), the factor

    (p / mu) ** Y * ((1 - p) / (1 - mu)) ** (1 - Y)

is convex in Y, hence at most its chord (1 - Y) * (1 - p) / (1 - mu) + Y * p / mu, whose expectation
is exactly 1. So the product over requests, (p / mu) ** S * ((1 - p) / (1 - mu)) ** (N - S), is a
nonnegative supermartingale that depends on the data only through the running sum S and count N.
Mixing over p with a Beta(1/2, 1/2) prior keeps that property and has a closed form; Ville's
inequality then bounds the chance that it ever reaches 1/a by a, at every look, however often one
looks. The set of means it has not rejected is the confidence sequence.

For 0/1 data (errors, exceedances) this is the Bernoulli likelihood ratio mixed over p, so nothing
is lost; for fractional scores it is as wide as if they were 0/1 with the same mean (the price of
having no per-request variance). Assumption: requests are independent with a common mean.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

PRIOR_A = 0.5
PRIOR_B = 0.5
# Halving [0, 1] 64 times pins a boundary far below any difference a decision could hinge on.
_BISECTION_STEPS = 64


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _log_mixture(total: float, count: float) -> float:
    """log of the Beta-mixture marginal likelihood of the data; it does not depend on the mean tested."""
    return _log_beta(total + PRIOR_A, count - total + PRIOR_B) - _log_beta(PRIOR_A, PRIOR_B)


def _log_likelihood(total: float, count: float, mean: float) -> float:
    failures = count - total
    # mean ** 0 is 1 even at mean == 0: a zero total says nothing against a zero mean.
    return (total * math.log(mean) if total > 0 else 0.0) + (
        failures * math.log1p(-mean) if failures > 0 else 0.0
    )


def log_e_value(total: float, count: float, mean: float) -> float:
    """log of the Beta-mixture e-value against "the mean is `mean`" after `count` observations
    in [0, 1] summing to `total`."""
    return _log_mixture(total, count) - _log_likelihood(total, count, mean)


def _clipped(total: float, count: float) -> float:
    # Counters read at slightly different instants can disagree; a share cannot leave [0, 1].
    return min(max(total, 0.0), count)


def lower_confidence_bound(total: float, count: float, miscoverage: float) -> float:
    """The lower end of confidence_interval, without computing the upper one."""
    if count <= 0:
        return 0.0
    total = _clipped(total, count)
    if total <= 0:
        return 0.0
    # Rejected means: log likelihood <= log mixture - log(1/miscoverage). The log likelihood is concave
    # in the mean with its peak at the estimate, so below the estimate one boundary is bracketed.
    floor = _log_mixture(total, count) - math.log(1.0 / miscoverage)
    rejected, accepted = 0.0, total / count
    for _ in range(_BISECTION_STEPS):
        middle = (rejected + accepted) / 2
        if middle <= 0.0 or _log_likelihood(total, count, middle) <= floor:
            rejected = middle
        else:
            accepted = middle
    # The rejected side of the bracket: rounding widens the interval, never narrows it.
    return rejected


def upper_confidence_bound(total: float, count: float, miscoverage: float) -> float:
    """The upper end of confidence_interval, without computing the lower one."""
    if count <= 0:
        return 1.0
    total = _clipped(total, count)
    # By symmetry: the upper bound on the mean is one minus the lower bound on the mean of 1 - Y.
    return 1.0 - lower_confidence_bound(count - total, count, miscoverage)


def confidence_interval(total: float, count: float, miscoverage: float) -> tuple[float, float]:
    """[lower, upper] that holds the mean at every look with probability >= 1 - miscoverage.

    `total` is clipped into [0, count]: counters read at slightly different instants can disagree.
    """
    return lower_confidence_bound(total, count, miscoverage), upper_confidence_bound(
        total, count, miscoverage
    )


# --- the same bounds for arrays of replicates (the sequential method's batch kernels) --------------


def _lgamma(values: NDArray[np.float64]) -> NDArray[np.float64]:
    # math.lgamma element by element: numpy has no lgamma, and this keeps the scalar functions' floats.
    return np.array([math.lgamma(value) for value in values.ravel().tolist()]).reshape(values.shape)


def lower_bounds(total: ArrayLike, count: ArrayLike, miscoverage: ArrayLike) -> NDArray[np.float64]:
    """lower_confidence_bound element by element."""
    count_ = np.asarray(count, dtype=float)
    total_ = np.minimum(np.maximum(np.asarray(total, dtype=float), 0.0), count_)
    level = np.broadcast_to(np.asarray(miscoverage, dtype=float), total_.shape)
    with np.errstate(invalid="ignore"):
        valid = (count_ > 0) & (total_ > 0)
    t = np.where(valid, total_, 1.0)
    n = np.where(valid, count_, 2.0)
    failures = n - t
    log_beta_prior = _log_beta(PRIOR_A, PRIOR_B)
    a, b = t + PRIOR_A, failures + PRIOR_B
    mixture = _lgamma(a) + _lgamma(b) - _lgamma(a + b) - log_beta_prior
    floor = mixture - np.array([math.log(1.0 / m) for m in level.ravel().tolist()]).reshape(level.shape)
    rejected = np.zeros_like(t)
    accepted = t / n
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(_BISECTION_STEPS):
            middle = (rejected + accepted) / 2
            likelihood = np.where(t > 0, t * np.log(middle), 0.0) + np.where(
                failures > 0, failures * np.log1p(-middle), 0.0
            )
            reject = (middle <= 0.0) | (likelihood <= floor)
            rejected = np.where(reject, middle, rejected)
            accepted = np.where(reject, accepted, middle)
    return np.where(valid, rejected, 0.0)


def upper_bounds(total: ArrayLike, count: ArrayLike, miscoverage: ArrayLike) -> NDArray[np.float64]:
    """upper_confidence_bound element by element."""
    count_ = np.asarray(count, dtype=float)
    total_ = np.minimum(np.maximum(np.asarray(total, dtype=float), 0.0), count_)
    with np.errstate(invalid="ignore"):
        positive = count_ > 0
    return np.where(positive, 1.0 - lower_bounds(count_ - total_, count_, miscoverage), 1.0)
