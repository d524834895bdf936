"""`evaluate_sequential` for the benchmark's SLOs, vectorised over replicates.

Calling the operator's function once per replicate and window costs about half a millisecond, which
for 2000 replicates x 42 cells x up to 60 windows is most of an hour; this does the same arithmetic on
arrays. It mirrors sequential.py, ratio_test.py and confidence.py step by step (same formulas, same
order of operations, math.lgamma for the Beta function) for SLO_SPEC only: errorRate, quality
maxDropVsStable, ttft p95 and costPerRequest, with the default SequentialConfig (its warm-up and the
no-evidence-of-harm rule before the final step), for rollouts whose first window starts at 0.
tests/unit/bench/test_bench_fast_sequential.py checks that it makes the same decision as
`evaluate_sequential` at every look of a few hundred simulated rollouts; the benchmark runs it as
"ours" only because that test passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from bench.decisions.model import (
    COST_MAX_USD,
    ERROR_RATE_MAX,
    FALSE_ROLLBACK_RATE,
    INTERVAL_SECONDS,
    MIN_REQUESTS,
    PRICING,
    QUALITY_MAX_DROP,
    SLO_SPEC,
    TTFT_EDGES,
    TTFT_P95_MAX,
)
from bench.decisions.policies import FAIL, HOLD, PASS, Look, histogram_p95, is_final_step
from bench.decisions.simulate import WindowArrays
from llmrollout.analysis.confidence import PRIOR_A, PRIOR_B
from llmrollout.analysis.ratio_test import RateRatioTest
from llmrollout.analysis.sequential import (
    P95_EXCEEDANCE,
    PERCENTILE_EDGE_TESTS,
    STABLE_P95_MIN_REQUESTS,
    WINDOW_OVERLAP_SLACK_SECONDS,
    SequentialConfig,
    rollback_test_count,
)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

_BISECTION_STEPS = 64
_EDGES = np.array(TTFT_EDGES)
_TTFT_EDGE_INDEX = TTFT_EDGES.index(max(edge for edge in TTFT_EDGES if edge <= TTFT_P95_MAX))
SLO_ORDER = ("quality", "ttft", "errors", "cost")  # the order evaluate_sequential reports them in


def _lgamma(values: FloatArray) -> FloatArray:
    return np.array([math.lgamma(value) for value in values.tolist()])


def _log_beta(a: FloatArray, b: FloatArray) -> FloatArray:
    return _lgamma(a) + _lgamma(b) - _lgamma(a + b)


_LOG_BETA_PRIOR = math.lgamma(PRIOR_A) + math.lgamma(PRIOR_B) - math.lgamma(PRIOR_A + PRIOR_B)


def lower_bounds(total: FloatArray, count: FloatArray, miscoverage: FloatArray) -> FloatArray:
    """confidence.lower_confidence_bound element by element."""
    total = np.minimum(np.maximum(total, 0.0), count)
    valid = (count > 0) & (total > 0)
    t = np.where(valid, total, 1.0)
    n = np.where(valid, count, 2.0)
    failures = n - t
    # math.log, not np.log, so that the floor is bit for bit confidence.py's.
    floor = (_log_beta(t + PRIOR_A, n - t + PRIOR_B) - _LOG_BETA_PRIOR) - np.array(
        [math.log(1.0 / m) for m in miscoverage.tolist()]
    )
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


@dataclass
class _Bounds:
    """Confidence bounds requested during one look, computed together in one bisection."""

    totals: list[FloatArray] = field(default_factory=list)
    counts: list[FloatArray] = field(default_factory=list)
    miscoverages: list[float] = field(default_factory=list)
    upper: list[bool] = field(default_factory=list)

    def ask(self, total: FloatArray, count: FloatArray, miscoverage: float, upper: bool) -> int:
        self.totals.append(total)
        self.counts.append(count)
        self.miscoverages.append(miscoverage)
        self.upper.append(upper)
        return len(self.totals) - 1

    def solve(self) -> list[FloatArray]:
        size = len(self.totals[0])
        totals, counts, levels = [], [], []
        for total, count, miscoverage, upper in zip(
            self.totals, self.counts, self.miscoverages, self.upper, strict=True
        ):
            clipped = np.minimum(np.maximum(total, 0.0), count)
            # The upper bound is one minus the lower bound on the mean of 1 - Y.
            totals.append(count - clipped if upper else total)
            counts.append(count)
            levels.append(np.full(size, miscoverage))
        lower = lower_bounds(np.concatenate(totals), np.concatenate(counts), np.concatenate(levels))
        results = []
        for k, (count, upper) in enumerate(zip(self.counts, self.upper, strict=True)):
            part = lower[k * size : (k + 1) * size]
            results.append(
                np.where(count <= 0, 1.0, 1.0 - part) if upper else np.where(count <= 0, 0.0, part)
            )
        return results


class _RatioTests:
    """RateRatioTest.update / log_e_value for many replicates."""

    def __init__(self, replicates: int, null_ratio: float) -> None:
        start = RateRatioTest.start(null_ratio)
        self.ratios = np.array(start.ratios)
        self.null = start.ratios.index(null_ratio)
        self.log_likelihood = np.zeros((replicates, len(self.ratios)))

    def update(
        self,
        index: IntArray,
        candidate_events: FloatArray,
        stable_events: FloatArray,
        candidate_exposure: FloatArray,
        stable_exposure: FloatArray,
    ) -> None:
        counts = np.stack([candidate_events, stable_events, candidate_exposure, stable_exposure])
        exposure = candidate_exposure + stable_exposure
        usable = np.all(np.isfinite(counts) & (counts >= 0), axis=0)
        usable &= (exposure > 0) & (candidate_events + stable_events > 0)
        share = np.where(usable, candidate_exposure / np.where(usable, exposure, 1.0), 0.5)
        usable &= (share > 0.0) & (share < 1.0)
        rows = index[usable]
        if len(rows) == 0:
            return
        s = share[usable][:, None]
        q = s * self.ratios / (s * self.ratios + 1.0 - s)
        previous = self.log_likelihood[rows]
        self.log_likelihood[rows] = (
            previous
            + candidate_events[usable][:, None] * np.log(q)
            + stable_events[usable][:, None] * np.log1p(-q)
        )

    def log_e_value(self, index: IntArray) -> FloatArray:
        ll = self.log_likelihood[index]
        alternatives = ll[:, self.null + 1 :] - ll[:, self.null : self.null + 1]
        peak = alternatives.max(axis=1)
        total = np.zeros(len(index))
        # Summed left to right, as Python's sum() does.
        for column in range(alternatives.shape[1]):
            total = total + np.exp(alternatives[:, column] - peak)
        with np.errstate(invalid="ignore"):
            mixed = np.where(np.isinf(peak), peak, peak + np.log(total))
        return np.asarray(mixed - math.log(alternatives.shape[1]))


def _add_sums(
    totals: FloatArray, counts: FloatArray, index: IntArray, total: FloatArray, count: FloatArray, clip: bool
) -> None:
    usable = np.isfinite(total) & np.isfinite(count) & (total >= 0) & (count > 0)
    rows = index[usable]
    added = np.minimum(total, count) if clip else total
    totals[rows] = totals[rows] + added[usable]
    counts[rows] = counts[rows] + count[usable]


@dataclass
class FastSequentialPolicy:
    """The benchmark's "ours": evaluate_sequential's decisions, vectorised (see the module docstring)."""

    name: str = "ours (sequential)"
    failure_limit: int = 1
    false_rollback_rate: float = FALSE_ROLLBACK_RATE
    config: SequentialConfig = field(default_factory=SequentialConfig)

    def start(self, replicates: int) -> None:
        assert SLO_SPEC.latency is None and not SLO_SPEC.custom and SLO_SPEC.quality is not None
        assert SLO_SPEC.quality.min_score is None, "only maxDropVsStable is mirrored"
        self.rollback = self.false_rollback_rate / max(rollback_test_count(SLO_SPEC), 1)
        self.threshold = math.log(1.0 / self.rollback)
        # TTFT's two edge tests (the SLO's, stable's p95) share its budget.
        self.edge_threshold = self.threshold + math.log(PERCENTILE_EDGE_TESTS)
        null = 1.0 + self.config.relative_tolerance
        self.errors_test = _RatioTests(replicates, null)
        self.ttft_test = _RatioTests(replicates, null)
        self.ttft_stable_p95_test = _RatioTests(replicates, null)
        # Per replicate, the index of the edge nearest stable's p95, once chosen; -1 before.
        self.stable_p95_edge = np.full(replicates, -1, np.int64)
        self.eval_test = _RatioTests(replicates, null)
        self.sums = {
            key: (np.zeros(replicates), np.zeros(replicates))
            for key in ("errors", "ttft", "qc", "qs", "cost")
        }
        # The warm-up's own sums, for its severe-breach rule only.
        self.warmup_sums = {
            key: (np.zeros(replicates), np.zeros(replicates))
            for key in ("errors", "errors_stable", "ttft", "ttft_stable")
        }
        self.failed = np.zeros((replicates, len(SLO_ORDER)), bool)
        self.step = np.full(replicates, -1, np.int64)
        self.step_requests = np.zeros((replicates, 2))

    def _choose_stable_p95_edge(self, index: IntArray, stable: WindowArrays) -> None:
        """sequential._stable_p95_edge: the edge nearest stable's p95 in the first window with enough
        stable requests, if it lies below the SLO's edge."""
        unchosen = (self.stable_p95_edge[index] < 0) & (stable.ttft_count >= STABLE_P95_MIN_REQUESTS)
        if not unchosen.any():
            return
        p95, _ = histogram_p95(stable.ttft[unchosen], stable.ttft_count[unchosen])
        # argmin takes the first of equals: the lower edge on a tie, as min() over sorted edges does.
        nearest = np.abs(_EDGES[None, :] - p95[:, None]).argmin(axis=1)
        rows = index[unchosen]
        self.stable_p95_edge[rows] = np.where(nearest < _TTFT_EDGE_INDEX, nearest, -1)

    def _update(self, index: IntArray, candidate: WindowArrays, stable: WindowArrays) -> FloatArray:
        sums = self.sums
        _add_sums(*sums["errors"], index, candidate.errors, candidate.requests, clip=True)
        self.errors_test.update(index, candidate.errors, stable.errors, candidate.requests, stable.requests)
        count = candidate.ttft_count
        cumulative = candidate.ttft[:, _TTFT_EDGE_INDEX]
        above = np.maximum(count - cumulative, 0.0)
        _add_sums(*sums["ttft"], index, above, count, clip=True)
        self.ttft_test.update(
            index,
            count - cumulative,
            stable.ttft_count - stable.ttft[:, _TTFT_EDGE_INDEX],
            count,
            stable.ttft_count,
        )
        edge = self.stable_p95_edge[index]
        chosen = edge >= 0
        column = np.maximum(edge, 0)[:, None]
        candidate_below = np.take_along_axis(candidate.ttft, column, axis=1)[:, 0]
        stable_below = np.take_along_axis(stable.ttft, column, axis=1)[:, 0]
        self.ttft_stable_p95_test.update(
            index,
            np.where(chosen, count - candidate_below, np.nan),
            np.where(chosen, stable.ttft_count - stable_below, np.nan),
            count,
            stable.ttft_count,
        )
        _add_sums(*sums["qc"], index, candidate.passed, candidate.passed + candidate.failed, clip=True)
        _add_sums(*sums["qs"], index, stable.passed, stable.passed + stable.failed, clip=True)
        self.eval_test.update(index, candidate.failed, stable.failed, candidate.judged, stable.judged)
        requests = candidate.requests
        usd = 0.0 + candidate.in_tokens * PRICING.input_per_million_tokens
        usd = usd + candidate.out_tokens * PRICING.output_per_million_tokens
        with np.errstate(divide="ignore", invalid="ignore"):
            window_total = np.where(
                requests > 0, usd / 1e6 / np.where(requests > 0, requests, 1.0) * requests, np.nan
            )
        _add_sums(*sums["cost"], index, window_total, requests, clip=False)
        return np.asarray(requests)

    def _severe(self, key: str, index: IntArray, allowed: float) -> BoolArray:
        total, count = (values[index] for values in self.warmup_sums[key])
        stable_total, stable_count = (values[index] for values in self.warmup_sums[f"{key}_stable"])
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = total / count
            stable_mean = np.where(stable_count > 0, stable_total / stable_count, 0.0)
        reference = np.maximum(allowed, stable_mean)
        enough = count >= self.config.warmup_severe_min_requests
        return np.asarray(enough & (mean > self.config.warmup_severe_multiple * reference))

    def _warmup_look(self, look: Look) -> IntArray:
        """A warm-up window: only the severe-breach sums grow; nothing counts toward minRequests."""
        index, candidate, stable = look.index, look.candidate, look.stable
        self._choose_stable_p95_edge(index, stable)
        sums = self.warmup_sums
        for key, window in (("", candidate), ("_stable", stable)):
            _add_sums(*sums[f"errors{key}"], index, window.errors, window.requests, clip=True)
            above = np.maximum(window.ttft_count - window.ttft[:, _TTFT_EDGE_INDEX], 0.0)
            _add_sums(*sums[f"ttft{key}"], index, above, window.ttft_count, clip=True)
        verdicts = np.full((len(index), len(SLO_ORDER)), HOLD, np.int64)
        verdicts[:, 1] = np.where(self._severe("ttft", index, P95_EXCEEDANCE), FAIL, HOLD)
        verdicts[:, 2] = np.where(self._severe("errors", index, ERROR_RATE_MAX), FAIL, HOLD)
        self.failed[index] |= verdicts == FAIL
        verdicts[self.failed[index]] = FAIL
        fresh_step = self.step[index] != look.level
        requests = self.step_requests[index]
        requests[fresh_step] = 0.0
        self.step_requests[index] = requests
        self.step[index] = look.level
        return np.where((verdicts == FAIL).any(axis=1), FAIL, HOLD).astype(np.int64)

    def look(self, look: Look) -> IntArray:
        index = look.index
        # Every replicate's first window starts at 0, which is where its warm-up is measured from.
        start = (look.minute - 1) * INTERVAL_SECONDS
        if start < self.config.warmup_seconds - WINDOW_OVERLAP_SLACK_SECONDS:
            return self._warmup_look(look)
        self._choose_stable_p95_edge(index, look.stable)
        self._update(index, look.candidate, look.stable)
        sums = {key: (total[index], count[index]) for key, (total, count) in self.sums.items()}
        rollback, passing = self.rollback, self.config.pass_miscoverage
        cap = self.config.cost_cap_multiple * COST_MAX_USD
        bounds = _Bounds()
        qs_total, qs_count = sums["qs"]
        qc_total, qc_count = sums["qc"]
        asked = {
            "drop_rollback_stable": bounds.ask(qs_total, qs_count, rollback / 2, upper=False),
            "drop_rollback_candidate": bounds.ask(qc_total, qc_count, rollback / 2, upper=True),
            "drop_pass_stable": bounds.ask(qs_total, qs_count, passing / 2, upper=True),
            "drop_pass_candidate": bounds.ask(qc_total, qc_count, passing / 2, upper=False),
            "ttft_pass": bounds.ask(*sums["ttft"], passing, upper=True),
            "errors_pass": bounds.ask(*sums["errors"], passing, upper=True),
            "cost_rollback": bounds.ask(sums["cost"][0] / cap, sums["cost"][1], rollback, upper=False),
            "cost_pass": bounds.ask(sums["cost"][0] / cap, sums["cost"][1], passing, upper=True),
        }
        solved = bounds.solve()
        b = {name: solved[k] for name, k in asked.items()}

        verdicts = np.full((len(index), len(SLO_ORDER)), HOLD, np.int64)
        # quality.maxDropVsStable
        defined = (qc_count > 0) & (qs_count > 0)
        drop_fail = defined & (b["drop_rollback_stable"] - b["drop_rollback_candidate"] > QUALITY_MAX_DROP)
        drop_fail |= self.eval_test.log_e_value(index) >= self.threshold
        drop_pass = defined & (b["drop_pass_stable"] - b["drop_pass_candidate"] <= QUALITY_MAX_DROP)
        verdicts[:, 0] = np.where(drop_fail, FAIL, np.where(drop_pass, PASS, HOLD))
        # ttft.p95
        ttft_fail = self.ttft_test.log_e_value(index) >= self.edge_threshold
        ttft_fail |= self.ttft_stable_p95_test.log_e_value(index) >= self.edge_threshold
        ttft_pass = (sums["ttft"][1] > 0) & (b["ttft_pass"] <= P95_EXCEEDANCE)
        verdicts[:, 1] = np.where(ttft_fail, FAIL, np.where(ttft_pass, PASS, HOLD))
        # errorRate
        errors_fail = self.errors_test.log_e_value(index) >= self.threshold
        errors_pass = (sums["errors"][1] > 0) & (b["errors_pass"] <= ERROR_RATE_MAX)
        verdicts[:, 2] = np.where(errors_fail, FAIL, np.where(errors_pass, PASS, HOLD))
        # costPerRequest
        cost_defined = sums["cost"][1] > 0
        cost_fail = cost_defined & (b["cost_rollback"] * cap > COST_MAX_USD)
        cost_pass = cost_defined & (b["cost_pass"] * cap <= COST_MAX_USD)
        verdicts[:, 3] = np.where(cost_fail, FAIL, np.where(cost_pass, PASS, HOLD))

        # A rollback verdict is final for the rollout.
        self.failed[index] |= verdicts == FAIL
        verdicts[self.failed[index]] = FAIL

        level = look.level
        fresh_step = self.step[index] != level
        requests = self.step_requests[index]
        requests[fresh_step] = 0.0
        for column, window in enumerate((look.candidate, look.stable)):
            value = window.requests
            usable = np.isfinite(value) & (value >= 0)
            requests[usable, column] = requests[usable, column] + value[usable]
        self.step_requests[index] = requests
        self.step[index] = level

        # Before the final step, an SLO whose point estimate is within it does not hold the step.
        with np.errstate(divide="ignore", invalid="ignore"):
            harmless = np.stack(
                [
                    defined & (qs_total / qs_count - qc_total / qc_count <= QUALITY_MAX_DROP),
                    (sums["ttft"][1] > 0) & (sums["ttft"][0] / sums["ttft"][1] <= P95_EXCEEDANCE),
                    (sums["errors"][1] > 0) & (sums["errors"][0] / sums["errors"][1] <= ERROR_RATE_MAX),
                    cost_defined & (sums["cost"][0] / sums["cost"][1] <= COST_MAX_USD),
                ],
                axis=1,
            )
        final = np.array([is_final_step(int(value)) for value in level.tolist()], bool)
        failed = (verdicts == FAIL).any(axis=1)
        open_ = ((verdicts == HOLD) & ~(harmless & ~final[:, None])).any(axis=1)
        short = (requests < MIN_REQUESTS).any(axis=1)
        return np.where(failed, FAIL, np.where(open_ | short, HOLD, PASS)).astype(np.int64)
