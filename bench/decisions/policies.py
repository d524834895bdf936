"""The decision policies, each judging one window at a time for many replicates at once.

A policy's `look` returns a Verdict code per replicate (PASS=0, INCONCLUSIVE=1, FAIL=2); the rollout
driver (rollout.py) turns verdicts into step changes, rollbacks and promotions the same way for all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from bench.decisions.model import (
    CAP_MINUTES,
    COST_MAX_USD,
    DESIGN_POINTS,
    ERROR_RATE_MAX,
    FALSE_ROLLBACK_RATE,
    JUDGED_SHARE,
    OUTPUT_SHAPE,
    PRICING,
    QUALITY_MAX_DROP,
    STABLE,
    STABLE_TTFT_P95,
    STEPS,
    TTFT_EDGES,
    TTFT_P95_MAX,
    Scenario,
    scenario,
)
from bench.decisions.simulate import WindowArrays
from bench.decisions.stats import bernoulli_kl
from llmrollout.analysis import Histogram, VariantWindow, Verdict

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

PASS, HOLD, FAIL = int(Verdict.PASS), int(Verdict.INCONCLUSIVE), int(Verdict.FAIL)
# Promote now, whatever the step: a decision taken at the horizon.
PROMOTE = 3
EDGES = np.array(TTFT_EDGES)
CANDIDATE, STABLE_NAME = "candidate", "stable"


@dataclass
class Look:
    """One window for the replicates still rolling out (`index` into the chunk's replicates)."""

    minute: int
    index: IntArray
    level: IntArray  # index into STEPS
    candidate: WindowArrays  # as the operator reads it
    stable: WindowArrays
    candidate_exact: (
        WindowArrays  # exact increments (lagged by the scrape phase): what ours and the oracle read
    )
    stable_exact: WindowArrays
    served: FloatArray | None = None  # canary requests actually served in this minute
    scrape_seconds: float = 15.0  # Prometheus' scrape interval in this run


class Policy(Protocol):
    name: str
    failure_limit: int

    def start(self, replicates: int) -> None: ...

    def look(self, look: Look) -> IntArray: ...


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def histogram_p95(ttft: FloatArray, count: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
    """PromQL's histogram_quantile(0.95) per row, and whether the rank fell in the +Inf bucket."""
    rank = 0.95 * count
    reached = ttft >= rank[:, None]
    finite = reached.any(axis=1)
    index = reached.argmax(axis=1)
    rows = np.arange(len(count))
    upper = EDGES[index]
    lower = np.where(index > 0, EDGES[np.maximum(index - 1, 0)], 0.0)
    below = np.where(index > 0, ttft[rows, np.maximum(index - 1, 0)], 0.0)
    in_bucket = ttft[rows, index] - below
    with np.errstate(divide="ignore", invalid="ignore"):
        value = lower + (upper - lower) * ((rank - below) / in_bucket)
    value = np.where(finite, value, EDGES[-1])
    return np.where(count > 0, value, np.nan), ~finite & (count > 0)


def cost_per_request(window: WindowArrays) -> FloatArray:
    usd = (
        window.in_tokens * PRICING.input_per_million_tokens
        + window.out_tokens * PRICING.output_per_million_tokens
    )
    return _ratio(usd / 1e6, window.requests)


# --- threshold (Flagger / Argo Rollouts) --------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    error_rate: float = ERROR_RATE_MAX
    quality_drop: float = QUALITY_MAX_DROP
    ttft_p95: float = TTFT_P95_MAX
    cost: float = COST_MAX_USD

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.error_rate, self.quality_drop, self.ttft_p95, self.cost)


def threshold_statistics(candidate: WindowArrays, stable: WindowArrays) -> tuple[FloatArray, ...]:
    """Each SLO's per-window value for the candidate (NaN where evaluate_variant is inconclusive), and
    whether its p95 lies above the highest finite bucket edge."""
    error_rate = _ratio(candidate.errors, candidate.requests)
    # The binary judge's score is its verdict, so the mean score is the pass rate.
    drop = _ratio(stable.passed, stable.judged) - _ratio(candidate.passed, candidate.judged)
    p95, above_edges = histogram_p95(candidate.ttft, candidate.ttft_count)
    return error_rate, drop, p95, cost_per_request(candidate), above_edges.astype(float)


def threshold_verdicts(statistics: tuple[FloatArray, ...], thresholds: Thresholds) -> IntArray:
    """The worst of the SLOs' verdicts, as evaluate_variant gives them."""
    *values, above_edges = statistics
    failed = np.zeros(len(above_edges), bool)
    missing = np.zeros(len(above_edges), bool)
    for position, (value, bound) in enumerate(zip(values, thresholds.as_tuple(), strict=True)):
        unknown = np.isnan(value)
        if position == 2:
            # A p95 in the +Inf bucket is only known to exceed the highest edge: inconclusive against a
            # bound at or above it.
            unknown = unknown | ((above_edges > 0) & (bound >= EDGES[-1]))
        with np.errstate(invalid="ignore"):
            failed |= ~unknown & (value > bound)
        missing |= unknown
    return np.where(failed, FAIL, np.where(missing, HOLD, PASS)).astype(np.int64)


@dataclass
class ThresholdPolicy:
    """Each window's value against a fixed bound per SLO; `failure_limit` failed windows in a step
    roll back (Flagger's analysis.threshold, Argo's failureLimit)."""

    name: str
    failure_limit: int = 1
    thresholds: Thresholds = field(default_factory=Thresholds)
    # Calibration records, per replicate, the largest value each SLO reached on the path.
    record: bool = False
    maxima: FloatArray = field(default_factory=lambda: np.zeros((0, 4)))

    def start(self, replicates: int) -> None:
        if self.record:
            self.maxima = np.full((replicates, 4), -np.inf)

    def look(self, look: Look) -> IntArray:
        statistics = threshold_statistics(look.candidate, look.stable)
        if self.record:
            stacked = np.stack(statistics[:4], axis=1)
            current = self.maxima[look.index]
            self.maxima[look.index] = np.fmax(current, stacked)
        return threshold_verdicts(statistics, self.thresholds)


# --- Kayenta (Netflix ACA judge) ------------------------------------------------------------------------

KAYENTA_Z = 2.3263478740408408  # two-sided 98%: norm.ppf(0.99)
KAYENTA_TOLERANCE = 0.25
KAYENTA_PASS, KAYENTA_MARGINAL = 95.0, 75.0


def _tie_term(values: FloatArray) -> FloatArray:
    """Sum over groups of tied values of (t^3 - t), per row; NaN entries are missing."""
    rows, width = values.shape
    ordered = np.sort(values, axis=1)  # NaN last
    valid = ~np.isnan(ordered)
    new_group = np.ones_like(valid)
    new_group[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = np.cumsum(new_group, axis=1) + (np.arange(rows) * (width + 1))[:, None]
    sizes = np.bincount(group[valid], minlength=rows * (width + 1) + width + 1).astype(float)
    term = sizes**3 - sizes
    return np.asarray(term[: rows * (width + 1)].reshape(rows, width + 1).sum(axis=1), dtype=float)


def mann_whitney_classify(experiment: FloatArray, control: FloatArray, increase: bool) -> IntArray:
    """Kayenta's MannWhitneyClassifier (tolerance 0.25, confidence 98%) per row: 1 when the
    experiment is High (increase) or Low (decrease), 0 for Pass, -1 for Nodata.

    As in Kayenta: the Hodges-Lehmann estimate of the shift, and the asymptotic (tie-corrected,
    continuity-corrected) confidence interval of R's wilcox.test; the metric fails when the interval
    lies beyond tolerance x |estimate| and the mean ratio points the same way. The interval's end is
    tested exactly (is the statistic at that shift beyond the quantile?) rather than found with
    Kayenta's Brent root finder.
    """
    nx = (~np.isnan(experiment)).sum(axis=1)
    ny = (~np.isnan(control)).sum(axis=1)
    result = np.zeros(len(nx), np.int64)
    nodata = (nx == 0) | (ny == 0)
    result[nodata] = -1
    rows = np.flatnonzero(~nodata)
    if len(rows) == 0:
        return result
    x, y = experiment[rows], control[rows]
    nx_, ny_ = nx[rows].astype(float), ny[rows].astype(float)
    differences = x[:, :, None] - y[:, None, :]
    flat = np.sort(differences.reshape(len(rows), -1), axis=1)
    pairs = (nx_ * ny_).astype(np.int64)
    positions = np.arange(len(rows))
    estimate = (flat[positions, (pairs - 1) // 2] + flat[positions, pairs // 2]) / 2
    shift = KAYENTA_TOLERANCE * np.abs(estimate) * (1.0 if increase else -1.0)
    # Ranks of x - shift among y, as wilcox.test forms them (not x - y against the shift, which
    # rounds differently at ties).
    moved = x - shift[:, None]
    above = (moved[:, :, None] > y[:, None, :]).sum(axis=(1, 2))
    tied = (moved[:, :, None] == y[:, None, :]).sum(axis=(1, 2))
    dz = above + 0.5 * tied - nx_ * ny_ / 2
    total = nx_ + ny_
    ties = _tie_term(np.concatenate([moved, y], axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt(nx_ * ny_ / 12 * ((total + 1) - ties / (total * (total - 1))))
        statistic = (dz - np.sign(dz) * 0.5) / sigma
        mean_x, mean_y = np.nanmean(x, axis=1), np.nanmean(y, axis=1)
        deviation = np.where(mean_y == 0, 1.0, mean_x / np.where(mean_y == 0, 1.0, mean_y))
    if increase:
        failed = (statistic > KAYENTA_Z) & (deviation >= 1.0)
    else:
        failed = (statistic < -KAYENTA_Z) & (deviation <= 1.0)
    # Identical or all-equal data pass outright, and a zero sigma is an error, never a failure.
    same = np.all(np.sort(x, axis=1) == np.sort(y, axis=1), axis=1) & (nx[rows] == ny[rows])
    lowest = np.fmin(np.nanmin(x, axis=1), np.nanmin(y, axis=1))
    highest = np.fmax(np.nanmax(x, axis=1), np.nanmax(y, axis=1))
    failed &= ~same & (lowest != highest) & (sigma > 0)
    result[rows] = failed.astype(np.int64)
    return result


@dataclass
class KayentaPolicy:
    """Kayenta's canary judge on a growing window: every interval, each metric's per-interval values
    since the start (candidate vs stable) go through the Mann-Whitney classifier; the score is the
    share of metrics (with data) that pass. Score >= 95 passes the step, < 75 rolls back, in
    between holds (marginal). Four metrics of equal weight: error rate, TTFT p95, eval pass rate,
    cost per request."""

    name: str = "kayenta"
    failure_limit: int = 1
    series: dict[str, FloatArray] = field(default_factory=dict)

    def start(self, replicates: int) -> None:
        self.series = {
            f"{metric}.{side}": np.full((replicates, CAP_MINUTES), np.nan)
            for metric in ("errors", "ttft", "pass", "cost")
            for side in ("candidate", "stable")
        }

    def look(self, look: Look) -> IntArray:
        column = look.minute - 1
        for side, window in (("candidate", look.candidate), ("stable", look.stable)):
            self.series[f"errors.{side}"][look.index, column] = _ratio(window.errors, window.requests)
            self.series[f"ttft.{side}"][look.index, column] = histogram_p95(window.ttft, window.ttft_count)[0]
            self.series[f"pass.{side}"][look.index, column] = _ratio(window.passed, window.judged)
            self.series[f"cost.{side}"][look.index, column] = cost_per_request(window)
        passed = np.zeros(len(look.index))
        counted = np.zeros(len(look.index))
        for metric, increase in (("errors", True), ("ttft", True), ("pass", False), ("cost", True)):
            experiment = self.series[f"{metric}.candidate"][look.index, : look.minute]
            control = self.series[f"{metric}.stable"][look.index, : look.minute]
            classified = mann_whitney_classify(experiment, control, increase)
            counted += classified >= 0
            passed += classified == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            score = 100.0 * passed / counted
        verdict = np.where(score >= KAYENTA_PASS, PASS, np.where(score < KAYENTA_MARGINAL, FAIL, HOLD))
        return np.where(counted > 0, verdict, HOLD).astype(np.int64)


# --- windows as the operator's threshold evaluation reads them (for the tests) ----------------------------


def variant_window(name: str, window: WindowArrays, row: int) -> VariantWindow:
    buckets = (
        *zip(TTFT_EDGES, window.ttft[row].tolist(), strict=True),
        (math.inf, float(window.ttft_count[row])),
    )
    passed, failed = float(window.passed[row]), float(window.failed[row])
    return VariantWindow(
        variant=name,
        requests=float(window.requests[row]),
        errors=float(window.errors[row]),
        ttft=Histogram(buckets),
        eval_score_sum=passed,  # binary judge: score 1 for a pass, 0 for a fail
        eval_score_count=passed + failed,
        eval_passed=passed,
        eval_failed=failed,
        input_tokens=float(window.in_tokens[row]),
        output_tokens=float(window.out_tokens[row]),
    )


# --- the oracle ------------------------------------------------------------------------------------------

ORACLE_MISS = 0.05  # the oracle's own error rates: ours' false rollback budget and the miss target


@dataclass(frozen=True)
class OracleModel:
    """What the oracle's SPRT observes per canary request, with both versions' true parameters:
    a Bernoulli rate (errors; failed verdicts), the TTFT bucket probabilities, or the gamma mean of
    output tokens."""

    family: str
    null: tuple[float, ...]
    alternative: tuple[float, ...]

    def kl_per_request(self) -> float:
        """KL(alternative || null) per canary request: the information one request carries."""
        ok = 1.0 - STABLE.error_rate
        if self.family == "tokens":
            ratio = self.alternative[0] / self.null[0]
            return ok * OUTPUT_SHAPE * (ratio - 1.0 - math.log(ratio))
        if self.family == "ttft":
            return ok * sum(
                p * math.log(p / q) for p, q in zip(self.alternative, self.null, strict=True) if p > 0
            )
        kl = bernoulli_kl(self.alternative[0], self.null[0])
        return kl if self.family == "errors" else ok * JUDGED_SHARE * kl


def oracle_model(scenario: Scenario) -> OracleModel | None:
    candidate = scenario.candidate
    if scenario.family == "errors":
        return OracleModel("errors", (STABLE.error_rate,), (candidate.error_rate,))
    if scenario.family == "quality":
        return OracleModel("quality", (1.0 - STABLE.pass_rate,), (1.0 - candidate.pass_rate,))
    if scenario.family == "ttft":
        # The whole histogram, not one edge: the most any test on the buckets can know.
        return OracleModel(
            "ttft", tuple(STABLE.ttft_bin_probabilities()), tuple(candidate.ttft_bin_probabilities())
        )
    if scenario.family == "tokens":
        return OracleModel("tokens", (STABLE.output_tokens,), (candidate.output_tokens,))
    return None


def design_point_models() -> tuple[OracleModel, ...]:
    """Per SLO family, stable against the regression at exactly its tightest stated bound: what the
    oracle tests a healthy candidate against (it must accept all of them to promote)."""
    models = []
    for name in DESIGN_POINTS.values():
        model = oracle_model(scenario(name))
        assert model is not None
        models.append(model)
    return tuple(models)


STABLE_P95_INDEX = TTFT_EDGES.index(STABLE_TTFT_P95)


@dataclass
class OraclePolicy:
    """Wald's SPRT of the stable's true parameter against the candidate's true one, on the regressed
    metric only, from exact per-interval counts: roll back at log((1-b)/a), accept at log(b/(1-a)),
    a = falseRollbackRate, b = 5%. Accepting passes every later step. Windows in `skip` (minutes in
    which the scenario is not in its steady state: a warm-up, an outage) count for nothing: the
    oracle knows they say nothing about the candidate."""

    model: OracleModel
    name: str = "oracle SPRT"
    failure_limit: int = 1
    alpha: float = FALSE_ROLLBACK_RATE
    beta: float = ORACLE_MISS
    skip: frozenset[int] = frozenset()
    counters: str = "exact"
    llr: FloatArray = field(default_factory=lambda: np.zeros(0))
    accepted: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))

    def start(self, replicates: int) -> None:
        self.llr = np.zeros(replicates)
        self.accepted = np.zeros(replicates, bool)

    def _increment(self, window: WindowArrays) -> FloatArray:
        family = self.model.family
        if family == "tokens":
            theta0, theta1 = self.model.null[0] / OUTPUT_SHAPE, self.model.alternative[0] / OUTPUT_SHAPE
            return np.asarray(
                window.ttft_count * OUTPUT_SHAPE * math.log(theta0 / theta1)
                + window.out_tokens * (1 / theta0 - 1 / theta1)
            )
        if family == "ttft":
            cumulative = np.concatenate([window.ttft, window.ttft_count[:, None]], axis=1)
            counts = np.diff(cumulative, axis=1, prepend=0.0)
            weights = np.log(np.maximum(self.model.alternative, 1e-300)) - np.log(
                np.maximum(self.model.null, 1e-300)
            )
            return np.asarray(counts @ weights)
        p0, p1 = self.model.null[0], self.model.alternative[0]
        events, trials = (
            (window.errors, window.requests) if family == "errors" else (window.failed, window.judged)
        )
        return np.asarray(events * math.log(p1 / p0) + (trials - events) * math.log((1 - p1) / (1 - p0)))

    def update(self, look: Look) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """Add the window; (rejected, accepted) per looked-at replicate. Acceptance is final."""
        index = look.index
        if look.minute not in self.skip:
            self.llr[index] += self._increment(look.candidate_exact)
        upper = math.log((1 - self.beta) / self.alpha)
        lower = math.log(self.beta / (1 - self.alpha))
        self.accepted[index] |= self.llr[index] <= lower
        accepted = self.accepted[index]
        return (self.llr[index] >= upper) & ~accepted, accepted

    def look(self, look: Look) -> IntArray:
        """Roll back on rejection; before the last step pass unless rejected (so that the oracle, like
        ours, reaches the traffic where evidence comes fast); at the last step pass once accepted."""
        rejected, accepted = self.update(look)
        return _oracle_verdict(look, rejected, accepted)


def _oracle_verdict(look: Look, rejected: NDArray[np.bool_], accepted: NDArray[np.bool_]) -> IntArray:
    final = look.level >= len(STEPS) - 1
    return np.where(rejected, FAIL, np.where(accepted | ~final, PASS, HOLD)).astype(np.int64)


@dataclass
class OracleSetPolicy:
    """The oracle on a healthy candidate: one OraclePolicy per model (design_point_models), each at
    a = falseRollbackRate / len(models) (so that its false rollback rate is at most falseRollbackRate,
    as ours' is) and b = 5%; it rolls back when any of them rejects and passes the last step once all
    of them have accepted (earlier ones unless one rejected)."""

    models: tuple[OracleModel, ...]
    skip: frozenset[int] = frozenset()
    name: str = "oracle SPRT"
    failure_limit: int = 1
    counters: str = "exact"
    parts: list[OraclePolicy] = field(default_factory=list)

    def start(self, replicates: int) -> None:
        alpha = FALSE_ROLLBACK_RATE / max(len(self.models), 1)
        self.parts = [OraclePolicy(model, alpha=alpha, skip=self.skip) for model in self.models]
        for part in self.parts:
            part.start(replicates)

    def look(self, look: Look) -> IntArray:
        updates = [part.update(look) for part in self.parts]
        rejected = np.stack([r for r, _ in updates]).any(axis=0)
        accepted = np.stack([a for _, a in updates]).all(axis=0)
        return _oracle_verdict(look, rejected, accepted)


def unsteady_minutes(item: Scenario) -> frozenset[int]:
    """The windows the oracle skips for `item`: those with a warm-up or an outage in them, and the one
    after each, into which exact reads lagged by the scrape phase carry the end of it."""
    unsteady = {m for m in range(1, CAP_MINUTES + 1) if not item.steady(m)}
    return frozenset(unsteady | {m + 1 for m in unsteady if m < CAP_MINUTES})
