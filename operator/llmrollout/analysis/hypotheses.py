"""What an SLO family hands the sequential method for one look: its tests and this window's data.

A family (llmrollout.analysis.slos) turns a window into tests of three shapes, all on arrays of
replicates:

- CountTest: events among exposures, judged by Wald's SPRT (sprt.py): one-sample against an
  absolute bound, or two-sample against stable's rate.
- MeanTest: a mean in [0, cap] (eval scores, cost per request) judged by confidence sequences
  (confidence.py): rolls back when the bound is breached beyond doubt at the rollback level,
  clears when it is met at the miss level.
- BreachCount: a custom query's value, which no test can judge; rolls back after consecutive
  breaching looks.

Each test's `key` names its evidence in the state and carries whatever the evidence depends on
(the bound, the tolerance), so that a spec change starts it afresh instead of misreading it.
Families also say, per SLO, whether this window's data are missing and what the point estimate
shows (for "no evidence of harm" before the final step). Parameters a family chooses from stable's
data (a bucket edge, the rate ratio that a relative bound means) are kept in the state through
`LookInput.param`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from llmrollout.analysis import sprt
from llmrollout.analysis.batch import SideBatch, WindowBatch

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# Windows are [start, end] in unix seconds; providers may round them, so allow a little overlap.
WINDOW_OVERLAP_SLACK_SECONDS = 1e-3
P95_EXCEEDANCE = 0.05


@dataclass(frozen=True)
class SequentialConfig:
    # An absolute bound's H0 ("comfortably inside") is this fraction of the bound, its H1 the bound.
    absolute_null_fraction: float = 0.5
    # Every relative bound's H0: the candidate no worse than stable ...
    ratio_null: float = 1.0
    # ... except the relative cost bound's: this share of the increase it allows. Cost moves with the
    # answers' length, which a new model or prompt changes a little as a rule; an H0 of "exactly
    # stable's" would put such a candidate halfway to H1. At a quarter, answers 5% longer (cost +3.6%
    # of a 10% bound) were rolled back 0.9% of the time at 100 requests/s; at 0.3, 0.4%.
    cost_null_share: float = 0.3
    # ... and the percentile bounds' shift watch's: durations longer by this share of maxIncrease. It
    # only rolls back, so H0 needs little room: at a quarter a +20% shift took 519 canary requests to
    # roll back at 10 requests/s, at a tenth 366; healthy candidates were rolled back no more often.
    shift_null_share: float = 0.1
    # ... and quality.maxDropVsStable's: a pass rate lower by this share of maxDrop. With an H0 of no
    # drop at all, a candidate a sixth of the way to the bound (0.5 points of 3) was rolled back 1.5%
    # of the time even at 100 requests/s (0.6% at a tenth); a larger share costs misses at the bound
    # where judged answers are few (at 10 requests/s no share missed 3.2% of drops of exactly
    # maxDrop, a tenth 5.0%, 0.15 5.8%, a quarter 6%), for fewer false rollbacks there (6.7%, 5.1%,
    # 4.8%, 4.5% of identical candidates): at that traffic the test is at its information limit.
    quality_null_share: float = 0.1
    # Stable's histogram chosen from (its p95, a distribution to shift bucket by bucket) must rest on
    # this many observations: a p95 from 20 put (1 + maxIncrease) x it anywhere between stable's p90
    # and p99, and where it fell low a candidate like stable exceeded it more often than H0 allows
    # (2.6% of identical candidates rolled back at 60 s scrapes, whose first window is often short).
    stable_min_histogram: float = 200.0
    # ... and its eval failure share on this many verdicts. quality.maxDropVsStable's route (failures
    # or mean scores) waits until that share is this many standard errors (Wilson's) from maxDrop, or
    # until stable_route_max_judged verdicts (two minutes at 10 requests/s with 20% judged, about 17
    # at 1 request/s; a judge that never fails is clear of a maxDrop of 0.03 after ~90).
    stable_min_judged: float = 50.0
    stable_route_z: float = 1.645
    stable_route_max_judged: float = 200.0
    # A percentile SLO needs a bucket edge within this factor of its bound (either side).
    histogram_resolution: float = 2.0
    # Assumed per-request cost ceiling, as a multiple of costPerRequest.maxUSD.
    cost_cap_multiple: float = 10.0
    custom_breaches_to_fail: int = 2
    # Count tests roll back on a mixture of H1 and an alternative this many times as far from H0 (log
    # scale), weighted `steep_weight` to H1 (1 turns it off): a regression well beyond its bound is
    # rolled back sooner, one at the bound a little later. At 10 requests/s (500 replicates), errors
    # 1% -> 5% took 375 canary requests without it, 311 with it (296 at weight 0.5); a pass rate of
    # 80% for 90% 2,326 and 1,854 (1,746); at the bounds, errors 1% -> 2% 2,124 and 2,184 (2,279),
    # TTFT +20% 368 and 372 (383); misses and false rollbacks did not change beyond noise.
    steep_multiple: float = 2.0
    steep_weight: float = 0.75
    # Steps before the last hold while a count test's pooled estimate is beyond a regression this many
    # times as far from H0 as its H1 (log scale): a 90% pass rate's maxDrop of 3 points holds past a drop
    # of ~6.4, errorRate.maxIncreaseVsStable 1.0 past 4 x stable's. Holding at H1 itself (a multiple of 1)
    # trapped healthy candidates whose first looks were unlucky at 5% of traffic. At 10 requests/s (1,000
    # replicates, 60-minute horizon) 1 -> 2 took identical candidates' false rollbacks from 4.9% to 3.1%,
    # within tolerance 13.1% -> 11.4%, misses of a pass rate of 87% 3.9% -> 3.4%; a pass rate of 80% was
    # rolled back after 29.9 minutes instead of 38.1 but with 475 failed answers served instead of 374
    # (holding only on half the rollback evidence: 2.6%, 10.9%, 3.3%, and 690).
    harm_multiple: float = 2.0
    # A new candidate's first windows (those starting within this many seconds of its first window's
    # start) count as evidence for nothing: cold caches, JIT and autoscaling make a healthy candidate
    # look worse for a minute or two, and a test never forgets what it has counted.
    warmup_seconds: float = 120.0
    # ... except a severe breach: during warm-up the candidate is rolled back when its error rate, or
    # its share of requests above a p95 bound, over the warm-up so far exceeds this multiple of both
    # what the SLO allows and stable's, on at least this many requests.
    warmup_severe_multiple: float = 5.0
    warmup_severe_min_requests: int = 50


@dataclass(frozen=True)
class CountTest:
    key: str
    slo: str
    what: str  # what is counted, for messages: "error rate", "share above 0.80s"
    candidate_events: FloatArray
    candidate_exposure: FloatArray
    # One-sample tests compare the candidate's rate with p0/p1; two-sample ones with stable's.
    null: FloatArray  # p0, or rho0
    alternative: FloatArray  # p1, or rho1
    stable_events: FloatArray | None = None
    stable_exposure: FloatArray | None = None
    # Where False, the test is not set up yet (a parameter still unknown): nothing is added.
    ready: BoolArray | None = None
    # Where False, stable's data showed that this test cannot be set up (no bucket edge with stable's
    # requests above it): it is left out, as if cleared, and the SLO rests on its other tests.
    applicable: BoolArray | None = None
    # Why it is left out where not applicable, in words.
    left_out: str = ""
    # Where False, the test can roll back but not clear: another test is the SLO's proof, this one a
    # second watch for a regression it happens to see sooner.
    clears: BoolArray | None = None
    # A bound relative to stable (worded so); two-sample tests always are.
    relative: bool = False
    # Where True, this window adds nothing to the test (a shared incident: see shared_incident).
    skip: BoolArray | None = None
    # The share of missRate this test may use: below 1 when any of several tests can clear the SLO.
    miss_share: float = 1.0
    # A two-sample test of one distribution against another: each version's histogram counts per
    # bucket (not cumulative; shape (replicates, buckets)), H0 and H1 a rate ratio per bucket (stable's
    # distribution shifted by as much as each says). The LLR is the buckets' (sprt.bucket_ratio_llr);
    # the events and exposures above then only summarise (a mean, for messages and "no evidence of
    # harm"), and `bucket_shares` (stable's share per bucket) are for the plan.
    candidate_buckets: FloatArray | None = None
    stable_buckets: FloatArray | None = None
    bucket_nulls: FloatArray | None = None
    bucket_ratios: FloatArray | None = None
    bucket_shares: FloatArray | None = None

    @property
    def two_sample(self) -> bool:
        return self.stable_events is not None

    @property
    def bucketed(self) -> bool:
        return self.candidate_buckets is not None


@dataclass(frozen=True)
class MeanTest:
    """A mean of values in [0, cap]: the window adds `total` over `count` observations. With stable's
    total and count too, the tested quantity is stable's mean minus the candidate's (a drop): on
    difference.py's e-processes where either version has a bound on squares, else each mean bounded
    by its own confidence sequence at half the level."""

    key: str
    slo: str
    what: str
    total: FloatArray
    count: FloatArray
    bound: float
    cap: float
    direction: Literal["max", "min"]  # the SLO is an upper bound on the mean (cost) or a lower one
    # Roll back once the mean is beyond doubt past this level: between H0 and the bound (H1), so that
    # a candidate exactly at the bound is caught instead of left to the horizon.
    rollback_level: float
    stable_total: FloatArray | None = None
    stable_count: FloatArray | None = None
    # An upper bound on the window's sum of squared values (a histogram's, each at its bucket's upper
    # edge): the test then reads the variance from the data (bernstein.py) instead of assuming the
    # widest one [0, cap] allows. None: no such bound (confidence.py's sequences).
    square: FloatArray | None = None
    stable_square: FloatArray | None = None  # stable's, for a drop
    miss_share: float = 1.0
    ready: BoolArray | None = None
    applicable: BoolArray | None = None
    clears: BoolArray | None = None  # as CountTest.clears

    @property
    def two_sample(self) -> bool:
        return self.stable_total is not None


@dataclass(frozen=True)
class BreachCount:
    key: str
    slo: str
    breached: BoolArray
    within: BoolArray  # breached and within are both False when the value is missing


Test = CountTest | MeanTest | BreachCount


@dataclass(frozen=True)
class SLOLook:
    """One SLO's part of a look: its tests, and facts about this window for its result. Whether the
    SLO shows no evidence of harm is read off its tests' pooled counts (none far beyond its H1:
    engine._harmless)."""

    slo: str
    label: str  # "errorRate", "ttft p95", ...
    bound: float
    tests: tuple[Test, ...]
    missing: BoolArray  # this window lacks data the SLO needs (a series, NaN, no stable)
    missing_reason: str  # for messages (operator: replicate 0)
    estimate: FloatArray  # this window's value, shown in status (NaN when none)
    # Severe breaches during warm-up are judged on these (events, exposure), for both versions.
    warmup: tuple[FloatArray, FloatArray, FloatArray, FloatArray, float] | None = None
    # Whether any one cleared test clears the SLO (alternative routes to the same proof, each with its
    # share of missRate), rather than all of them (different regressions, each to be ruled out).
    clear_any: bool = False


@dataclass
class LookInput:
    """What a family reads: the window, the stable version's identity and the state's parameters."""

    window: WindowBatch
    candidate_name: str
    stable_name: str
    stable_required: bool  # stable still gets traffic (candidate below 100%)
    params: dict[str, FloatArray] = field(default_factory=dict)
    # Whether this window adds to pools (a window already counted, retried, adds nothing).
    fresh: bool = True
    warmup: bool = False

    @property
    def candidate(self) -> SideBatch:
        return self.window.candidate

    @property
    def stable(self) -> SideBatch:
        return self.window.stable

    @property
    def replicates(self) -> int:
        return self.window.replicates

    def missing_reason(self, *fields: str) -> str:
        """Why these fields are missing, naming the series looked for: the candidate's first, then
        stable's while it needs data."""
        sides = [(self.candidate, self.candidate_name)]
        if self.stable_required:
            sides.append((self.stable, self.stable_name))
        for side, name in sides:
            for field_name in fields:
                series = side.missing.get(field_name)
                if series:
                    return f"series missing on {name}: {series}"
        for side, name in sides:
            values = [getattr(side, f) for f in fields if isinstance(getattr(side, f, None), np.ndarray)]
            if any(bool(np.isnan(v[0])) for v in values if len(v)):
                return f"series missing on {name}"
        return "series missing"

    def param(self, key: str) -> FloatArray:
        """A parameter chosen at an earlier look (NaN where none was)."""
        return self.params.get(key, np.full(self.replicates, math.nan))

    def choose(self, key: str, value: FloatArray) -> FloatArray:
        """Keep `value` where no parameter was chosen yet; a chosen one never changes."""
        kept = self.param(key)
        chosen = np.where(np.isnan(kept), value, kept)
        self.params[key] = chosen
        return chosen

    def running_total(self, key: str, value: FloatArray) -> FloatArray:
        """Stable's data summed over the looks before this one; this window's is added for the next.
        A hypothesis set from it is predictable (fixed before the window's data is seen), so an SPRT
        whose H1 follows it stays a valid test, while the estimate sharpens with every look."""
        before = self.params.get(key)
        if before is None or before.shape != value.shape:
            before = np.zeros_like(value)
        if self.fresh:
            self.params[key] = before + np.where(np.isfinite(value), value, 0.0)
        return before

    def pool(self, key: str, value: FloatArray, choosing: str) -> FloatArray:
        """Stable's data summed over the looks so far (this one included), for choosing the parameter
        `choosing`; rows where it is chosen already stop pooling, and NaN (missing) adds nothing."""
        pooled = self.params.get(key)
        if pooled is None or pooled.shape != value.shape:
            # Nothing pooled yet, or the histogram's buckets changed: start again.
            pooled = np.zeros_like(value)
        if self.fresh:
            open_ = np.isnan(self.param(choosing))
            add = np.where(np.isfinite(value), value, 0.0)
            mask = open_.reshape(open_.shape + (1,) * (value.ndim - 1))
            pooled = pooled + np.where(mask, add, 0.0)
            self.params[key] = pooled
        return pooled


def shared_incident(
    stable_events: FloatArray, stable_exposure: FloatArray, bound: float, stable_required: bool
) -> BoolArray:
    """Windows in which stable itself is far beyond an absolute bound (more than twice it): an outage
    or overload hitting both versions. Such a window says nothing about the candidate against the
    bound, so absolute tests skip it; the tests against stable's rate still count it, since the
    shared part cancels out there."""
    if not stable_required:
        return np.zeros(len(stable_events), bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = stable_events / stable_exposure
        incident: BoolArray = np.isfinite(share) & (share > 2 * bound)
    return incident


def share_one_se_up(events: FloatArray, trials: FloatArray) -> FloatArray:
    """A share one standard error above its estimate (NaN without trials): stable's share where a
    bound relative to it sets a test's hypotheses, so that a low estimate does not put them beyond
    what the bound means."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = events / trials
        upper: FloatArray = share + np.sqrt(share * (1 - share) / trials)
    return upper


def nan_to_missing(*values: FloatArray) -> BoolArray:
    """Where any of the arrays is NaN (a series missing) or negative/infinite (unusable)."""
    return ~sprt.usable(*values)
