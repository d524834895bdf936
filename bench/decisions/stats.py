"""Wald's bound and the interval estimates the report uses."""

from __future__ import annotations

import math

from scipy.stats import beta  # type: ignore[import-untyped]


def wald_numerator(alpha: float, beta_: float) -> float:
    """(1-b) log((1-b)/a) + b log(b/(1-a)): Wald's lower bound on E1[N] times KL(P1 || P0)."""
    value = (1.0 - beta_) * math.log((1.0 - beta_) / alpha)
    if beta_ > 0:
        value += beta_ * math.log(beta_ / (1.0 - alpha))
    return value


def wald_bound(alpha: float, beta_: float, kl: float) -> float:
    """The least expected number of observations with which any test with error rates (alpha, beta_)
    can reject P0 when P1 holds (Wald & Wolfowitz 1948); 0 when the error rates ask for nothing."""
    if not 0 < alpha < 1 or not 0 <= beta_ < 1 or kl <= 0:
        return math.nan
    return max(wald_numerator(alpha, beta_), 0.0) / kl


def wald_accept_bound(alpha: float, beta_: float, kl: float) -> float:
    """The least expected number of observations with which any test with error rates (alpha, beta_)
    can accept P0 when P0 holds: [(1-a) log((1-a)/b) + a log(a/(1-b))] / KL(P0 || P1)."""
    if not 0 < beta_ < 1 or not 0 <= alpha < 1 or kl <= 0:
        return math.nan
    return max(wald_numerator(beta_, alpha), 0.0) / kl


def bernoulli_kl(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q))."""
    total = 0.0
    if p > 0:
        total += p * math.log(p / q)
    if p < 1:
        total += (1.0 - p) * math.log((1.0 - p) / (1.0 - q))
    return total


def upper_bound(events: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper confidence bound on a rate."""
    if trials <= 0:
        return math.nan
    if events >= trials:
        return 1.0
    return float(beta.ppf(confidence, events + 1, trials - events))
