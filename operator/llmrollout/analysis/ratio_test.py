"""Anytime-valid test that the candidate's event rate exceeds the stable version's by more than a
tolerance, with the candidate's traffic share changing from window to window.

Lindon & Malek, "Anytime-valid inference for multinomial count data" (NeurIPS 2022): if events
(errors, failed evals, slow requests) arrive at rate rho_t * r * mu_t on the candidate and
(1 - rho_t) * mu_t on stable, then given a window's total X_t the candidate's share is
Binomial(X_t, q_t) with q_t = rho_t r / (rho_t r + 1 - rho_t). The shared, time-varying baseline mu_t
cancels, so an outage or a load spike that hits both versions is not evidence against the candidate.

The rate ratio r gets a uniform prior over a fixed log-spaced grid; the state is the cumulative
log-likelihood at each grid point, updated per window, which is all that must survive a restart.
Testing H0: r <= r0 against the mixture over grid points above r0: for r > r0 each window's
likelihood ratio increases in x_c, and x_c is stochastically smaller under any r' <= r0, so the
mixture is a supermartingale under every null ratio, and by Ville's inequality it reaches 1/alpha
with probability at most alpha however often it is checked.

When errors are binomial given requests (rather than Poisson), x_c given X_t is hypergeometric;
at r = 1 that is smaller in convex order than the binomial (Hoeffding 1963), so the test stays
valid for identical versions and is conservative for rare events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

# 33 log-spaced ratios from 1/16 to 16 (a factor of about 1.19 apart); the tolerance is added.
GRID_STEPS_PER_DOUBLING = 4
GRID_MAX_DOUBLINGS = 4
BASE_GRID = tuple(
    2.0 ** (k / GRID_STEPS_PER_DOUBLING)
    for k in range(
        -GRID_MAX_DOUBLINGS * GRID_STEPS_PER_DOUBLING, GRID_MAX_DOUBLINGS * GRID_STEPS_PER_DOUBLING + 1
    )
)


def log_sum_exp(values: Sequence[float]) -> float:
    if not values:
        return -math.inf
    peak = max(values)
    if math.isinf(peak):
        return peak
    return peak + math.log(sum(math.exp(value - peak) for value in values))


def candidate_share_probability(share: float, ratio: float) -> float:
    """q: the chance that an event belongs to the candidate, given its traffic share and rate ratio."""
    return share * ratio / (share * ratio + 1.0 - share)


@dataclass(frozen=True)
class RateRatioTest:
    """H0: candidate rate <= null_ratio x stable rate. Immutable; `update` returns the next state."""

    null_ratio: float
    ratios: tuple[float, ...]
    log_likelihood: tuple[float, ...]
    candidate_events: float = 0.0
    stable_events: float = 0.0
    candidate_exposure: float = 0.0
    stable_exposure: float = 0.0

    @classmethod
    def start(cls, null_ratio: float) -> RateRatioTest:
        ratios = tuple(sorted({*BASE_GRID, null_ratio}))
        return cls(null_ratio=null_ratio, ratios=ratios, log_likelihood=tuple(0.0 for _ in ratios))

    def update(
        self, candidate_events: float, stable_events: float, candidate_exposure: float, stable_exposure: float
    ) -> RateRatioTest:
        """Add one window. Exposures are what the events are counted over (requests, judged answers,
        histogram observations); their ratio is the candidate's share rho_t for this window."""
        counts = (candidate_events, stable_events, candidate_exposure, stable_exposure)
        if any(not math.isfinite(value) or value < 0 for value in counts):
            return self
        totals = _accumulate(self, *counts)
        exposure = candidate_exposure + stable_exposure
        if exposure <= 0 or candidate_events + stable_events <= 0:
            return totals
        share = candidate_exposure / exposure
        # With all traffic on one version the split of events is fixed: no information about r.
        if share <= 0.0 or share >= 1.0:
            return totals
        log_likelihood = tuple(
            previous + candidate_events * math.log(q) + stable_events * math.log1p(-q)
            for previous, q in (
                (previous, candidate_share_probability(share, ratio))
                for previous, ratio in zip(self.log_likelihood, self.ratios, strict=True)
            )
        )
        return replace(totals, log_likelihood=log_likelihood)

    def log_e_value(self) -> float:
        """log of the evidence against H0: r <= null_ratio (uniform mixture over grid ratios above it)."""
        null_index = self.ratios.index(self.null_ratio)
        null_log_likelihood = self.log_likelihood[null_index]
        alternatives = [value - null_log_likelihood for value in self.log_likelihood[null_index + 1 :]]
        return log_sum_exp(alternatives) - math.log(len(alternatives))

    def ratio_interval(self, miscoverage: float) -> tuple[float, float]:
        """Grid ratios not rejected at `miscoverage`, each tested against the uniform mixture over the
        whole grid; 0 or inf where the set reaches the grid's end. Approximate (the grid is coarse),
        so it is shown to people and never decides anything."""
        threshold = math.log(1.0 / miscoverage)
        log_mixture = log_sum_exp(self.log_likelihood) - math.log(len(self.ratios))
        kept = [
            ratio
            for ratio, value in zip(self.ratios, self.log_likelihood, strict=True)
            if log_mixture - value < threshold
        ]
        if not kept:
            return 0.0, math.inf
        lower = 0.0 if kept[0] == self.ratios[0] else kept[0]
        upper = math.inf if kept[-1] == self.ratios[-1] else kept[-1]
        return lower, upper

    @property
    def estimate(self) -> float | None:
        """Candidate rate / stable rate over everything seen; None until both are defined."""
        if self.candidate_exposure <= 0 or self.stable_exposure <= 0 or self.stable_events <= 0:
            return None
        return (self.candidate_events / self.candidate_exposure) / (self.stable_events / self.stable_exposure)

    def to_status(self) -> dict[str, Any]:
        return {
            "nullRatio": self.null_ratio,
            "ratios": list(self.ratios),
            "logLikelihood": list(self.log_likelihood),
            "candidateEvents": self.candidate_events,
            "stableEvents": self.stable_events,
            "candidateExposure": self.candidate_exposure,
            "stableExposure": self.stable_exposure,
        }

    @classmethod
    def from_status(cls, data: Mapping[str, Any]) -> RateRatioTest:
        ratios = tuple(float(value) for value in data["ratios"])
        log_likelihood = tuple(float(value) for value in data["logLikelihood"])
        null_ratio = float(data["nullRatio"])
        if len(ratios) != len(log_likelihood) or null_ratio not in ratios:
            raise ValueError("rate ratio test state is inconsistent")
        return cls(
            null_ratio=null_ratio,
            ratios=ratios,
            log_likelihood=log_likelihood,
            candidate_events=float(data.get("candidateEvents", 0.0)),
            stable_events=float(data.get("stableEvents", 0.0)),
            candidate_exposure=float(data.get("candidateExposure", 0.0)),
            stable_exposure=float(data.get("stableExposure", 0.0)),
        )


def _accumulate(
    test: RateRatioTest,
    candidate_events: float,
    stable_events: float,
    candidate_exposure: float,
    stable_exposure: float,
) -> RateRatioTest:
    return replace(
        test,
        candidate_events=test.candidate_events + candidate_events,
        stable_events=test.stable_events + stable_events,
        candidate_exposure=test.candidate_exposure + candidate_exposure,
        stable_exposure=test.stable_exposure + stable_exposure,
    )
