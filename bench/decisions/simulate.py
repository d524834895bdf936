"""Traffic traces and what Prometheus makes of them.

A trace holds, for every replicate, every scrape slot (SCRAPE_SECONDS) and every candidate weight of
the step schedule, what each version served in that slot: requests, errors, TTFT bucket counts,
token sums and the judge's verdicts with their delays. Slot counts are sampled directly from the
distribution of the aggregates of independent requests (Poisson arrivals split by weight, binomial
errors, multinomial buckets, gamma token sums), which equals generating the requests one by one and
counting them (`request_level_slot` does that, for the tests) at a fraction of the cost.

Common random numbers: a trace is a function of (seed, scenario, rps, chunk) only, and every policy
reads the slots of the weights it actually chose, so policies at the same weight at the same time see
the very same requests, and no policy's choices change another's traffic.

What Flagger and Argo Rollouts read for a window (and the threshold and Kayenta policies here) is
`increase(counter[1m])` evaluated at the window's end. With scrapes every 15 s a 1-minute range holds
4 samples: Prometheus takes the increase between the first and the last (3 slots) and extrapolates it
to the whole minute (x 4/3); the slot between two windows' samples is counted by neither. `read`
reproduces that ("increase").

The operator reads exact window increments ("exact"): the counter's value at the last scrape at or
before the window's end minus its value at the last scrape at or before the window's start, with no
extrapolation. Nothing is lost, but what was served after the last scrape of a window counts in the
next one: with scrapes every S seconds at a phase unknown to the operator, each look's evidence lags
its window by a time uniform in [0, S). `scrape_lags` spreads that lag over the replicates and rounds
it to the slot grid (1 s scrapes: none; 15 s: 0 or 1 slot; 60 s: 0 to 4 slots), and `window_slots`
moves each replicate's window back by it; the slots so moved were served at the weights of their
time, so a look just after a step change still reads some of the previous step's traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bench.decisions.model import (
    CAP_MINUTES,
    INPUT_SHAPE,
    INPUT_TOKENS,
    JUDGE_DELAYS,
    JUDGED_SHARE,
    OUTPUT_SHAPE,
    SLOT_SECONDS,
    SLOTS_PER_INTERVAL,
    STEPS,
    TOKEN_EDGES,
    TTFT_EDGES,
    TTFT_MEDIAN,
    TTFT_SIGMA,
    Behaviour,
    Scenario,
    token_bin_probabilities,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
# A trace's counts per slot: far below 2**31, and half the memory of int64 (a day-long trace of 500
# replicates took 11.5 GB in int64); sums over slots come out as int64.
CountArray = NDArray[np.int32]

SLOTS = CAP_MINUTES * SLOTS_PER_INTERVAL
EDGES = len(TTFT_EDGES)
# Per slot, per version: counts that increase counters when requests are served.
SERVED_FIELDS = ("requests", "errors", "in_tokens", "out_tokens", "failed_all")
# Verdicts of one slot's requests, by delay (in intervals) and outcome; they increase the eval counters
# when they arrive.
VERDICT_FIELDS = tuple(f"{outcome}_{delay}" for delay in JUDGE_DELAYS for outcome in ("passed", "failed"))


@dataclass
class VersionTrace:
    """One version's slot increments; arrays indexed [level, slot, replicate(, edge)]."""

    requests: CountArray
    errors: CountArray
    ttft: CountArray  # cumulative counts at the finite edges; the +Inf bucket is requests - errors
    in_tokens: FloatArray
    out_tokens: FloatArray
    failed_all: CountArray  # every failed answer, judged or not: what users were served
    verdicts: dict[str, CountArray]
    # Tokens per request, cumulative counts at TOKEN_EDGES (the +Inf bucket is requests - errors). A
    # slot's bucket counts and its token sums are sampled independently (each from its exact
    # distribution); within a window they are as consistent as two counters of one exporter are.
    in_hist: CountArray
    out_hist: CountArray


@dataclass
class Trace:
    scenario: Scenario
    rps: float
    replicates: int
    candidate: VersionTrace
    stable: VersionTrace

    @property
    def minutes(self) -> int:
        return int(self.candidate.requests.shape[1]) // SLOTS_PER_INTERVAL


def _version(
    rng: np.random.Generator, scenario: Scenario, candidate: bool, rps: float, replicates: int, slots: int
) -> VersionTrace:
    levels = len(STEPS)
    shape = (levels, slots, replicates)
    weights = np.array(STEPS, dtype=float) / 100.0
    share = weights if candidate else 1.0 - weights
    mean_requests = (rps * SLOT_SECONDS * share)[:, None] * np.ones((1, replicates))
    requests = np.empty(shape, np.int32)
    errors = np.empty(shape, np.int32)
    ttft = np.empty((*shape, EDGES), np.int32)
    in_tokens = np.empty(shape)
    out_tokens = np.empty(shape)
    failed_all = np.empty(shape, np.int32)
    verdicts = {name: np.empty(shape, np.int32) for name in VERDICT_FIELDS}
    in_hist = np.empty((*shape, len(TOKEN_EDGES)), np.int32)
    out_hist = np.empty((*shape, len(TOKEN_EDGES)), np.int32)
    in_bins = token_bin_probabilities(INPUT_TOKENS, INPUT_SHAPE)
    token_bins: dict[float, list[float]] = {}
    cache: dict[Behaviour, list[float]] = {}
    for slot in range(slots):
        behaviour = scenario.behaviour(candidate, slot * SLOT_SECONDS)
        bins = cache.setdefault(behaviour, behaviour.ttft_bin_probabilities())
        n = rng.poisson(mean_requests)
        e = rng.binomial(n, behaviour.error_rate)
        ok = n - e
        buckets = rng.multinomial(ok, bins)
        requests[:, slot] = n
        errors[:, slot] = e
        ttft[:, slot] = np.cumsum(buckets[..., :EDGES], axis=-1)
        # A sum of k gamma(shape) draws is gamma(k * shape); numpy returns 0 for shape 0.
        in_tokens[:, slot] = rng.gamma(ok * INPUT_SHAPE, INPUT_TOKENS / INPUT_SHAPE)
        out_tokens[:, slot] = rng.gamma(ok * OUTPUT_SHAPE, behaviour.output_tokens / OUTPUT_SHAPE)
        out_bins = token_bins.setdefault(
            behaviour.output_tokens, token_bin_probabilities(behaviour.output_tokens, OUTPUT_SHAPE)
        )
        in_hist[:, slot] = np.cumsum(rng.multinomial(ok, in_bins)[..., : len(TOKEN_EDGES)], axis=-1)
        out_hist[:, slot] = np.cumsum(rng.multinomial(ok, out_bins)[..., : len(TOKEN_EDGES)], axis=-1)
        failed = rng.binomial(ok, 1.0 - behaviour.pass_rate)
        failed_all[:, slot] = failed
        judged_failed = rng.binomial(failed, JUDGED_SHARE)
        judged_passed = rng.binomial(ok - failed, JUDGED_SHARE)
        first_failed = rng.binomial(judged_failed, 0.5)
        first_passed = rng.binomial(judged_passed, 0.5)
        first, second = JUDGE_DELAYS
        verdicts[f"failed_{first}"][:, slot] = first_failed
        verdicts[f"failed_{second}"][:, slot] = judged_failed - first_failed
        verdicts[f"passed_{first}"][:, slot] = first_passed
        verdicts[f"passed_{second}"][:, slot] = judged_passed - first_passed
    return VersionTrace(
        requests, errors, ttft, in_tokens, out_tokens, failed_all, verdicts, in_hist, out_hist
    )


def generate(
    scenario: Scenario, rps: float, replicates: int, seed: tuple[int, ...], minutes: int = CAP_MINUTES
) -> Trace:
    """The trace for one (scenario, rps) chunk, `minutes` long; equal seeds give equal traces."""
    rng = np.random.default_rng(np.random.SeedSequence(list(seed)))
    slots = minutes * SLOTS_PER_INTERVAL
    candidate = _version(rng, scenario, True, rps, replicates, slots)
    stable = _version(rng, scenario, False, rps, replicates, slots)
    return Trace(scenario, rps, replicates, candidate, stable)


@dataclass
class Slots:
    """One version's increments in the SLOTS_PER_INTERVAL slots of one interval, for some replicates:
    arrays [replicate, slot(, edge)]. `passed`/`failed` are verdicts arriving in those slots."""

    requests: FloatArray
    errors: FloatArray
    ttft: FloatArray
    in_tokens: FloatArray
    out_tokens: FloatArray
    passed: FloatArray
    failed: FloatArray
    in_hist: FloatArray
    out_hist: FloatArray


@dataclass
class WindowArrays:
    """What one window's queries return for one version, for some replicates (arrays [replicate])."""

    requests: FloatArray
    errors: FloatArray
    ttft: FloatArray  # [replicate, edge], cumulative; the +Inf bucket is `ttft_count`
    ttft_count: FloatArray
    in_tokens: FloatArray
    out_tokens: FloatArray
    passed: FloatArray
    failed: FloatArray
    in_hist: FloatArray  # [replicate, edge], cumulative; the +Inf bucket is `ttft_count` (answers)
    out_hist: FloatArray

    @property
    def judged(self) -> FloatArray:
        return self.passed + self.failed


LAG_PHASES = 8  # scrape phases spread evenly over the replicates (replicate r has phase r mod 8)


def scrape_lags(scrape_seconds: float, replicates: int) -> IntArray:
    """Per replicate, the slots by which exact reads lag the analysis window with scrapes every
    `scrape_seconds`: the time from the last scrape at or before a window's end to that end, uniform
    in [0, scrape_seconds) over the scrape's phase, rounded to the nearest slot."""
    phase = (np.arange(replicates) % LAG_PHASES + 0.5) / LAG_PHASES
    return np.floor(phase * scrape_seconds / SLOT_SECONDS + 0.5).astype(np.int64)


def window_slots(minute: int, lags: IntArray) -> IntArray:
    """[replicate, slot]: the slots whose increments the look at the end of `minute` reads exactly;
    negative slots lie before the rollout and hold nothing of it."""
    base = np.arange((minute - 1) * SLOTS_PER_INTERVAL, minute * SLOTS_PER_INTERVAL)
    return np.asarray(base[None, :] - lags[:, None], dtype=np.int64)


def increase_factor(samples: int) -> float:
    """Prometheus' extrapolation for a range holding `samples` evenly spaced scrapes whose first
    sample is just after the range start: the increase over samples - 1 scrape intervals is stretched
    to the whole range (both gaps to the boundaries are below 1.1 x the scrape interval)."""
    return samples / (samples - 1)


def read(slots: Slots, mode: str) -> WindowArrays:
    """The window's values as the operator's queries return them (see the module docstring)."""
    if mode == "exact":

        def total(values: FloatArray) -> FloatArray:
            return np.asarray(values.sum(axis=1), dtype=float)
    elif mode == "increase":
        factor = increase_factor(SLOTS_PER_INTERVAL)

        def total(values: FloatArray) -> FloatArray:
            return np.asarray(values[:, : SLOTS_PER_INTERVAL - 1].sum(axis=1) * factor, dtype=float)
    else:
        raise ValueError(f"unknown counter mode {mode!r}; expected increase or exact")
    return WindowArrays(
        requests=total(slots.requests),
        errors=total(slots.errors),
        ttft=total(slots.ttft),
        # The +Inf bucket is a counter of its own: successful requests.
        ttft_count=total(slots.requests - slots.errors),
        in_tokens=total(slots.in_tokens),
        out_tokens=total(slots.out_tokens),
        passed=total(slots.passed),
        failed=total(slots.failed),
        in_hist=total(slots.in_hist),
        out_hist=total(slots.out_hist),
    )


def request_level_slot(
    rng: np.random.Generator, behaviour: Behaviour, mean_requests: float
) -> dict[str, object]:
    """One slot of one version generated request by request (for tests of the fast sampler).

    Returns the per-request arrays: ttft (NaN for errors), error flags, tokens, judged flags, verdicts
    and verdict delays."""
    n = int(rng.poisson(mean_requests))
    error = rng.random(n) < behaviour.error_rate
    z = rng.standard_normal(n)
    ttft = TTFT_MEDIAN * behaviour.ttft_scale * np.exp(TTFT_SIGMA * z)
    stretched = ttft > behaviour.tail_from
    ttft[stretched] = behaviour.tail_from * (ttft[stretched] / behaviour.tail_from) ** behaviour.tail_power
    ttft[error] = np.nan
    in_tokens = np.where(error, 0.0, rng.gamma(INPUT_SHAPE, INPUT_TOKENS / INPUT_SHAPE, n))
    out_tokens = np.where(error, 0.0, rng.gamma(OUTPUT_SHAPE, behaviour.output_tokens / OUTPUT_SHAPE, n))
    passed = rng.random(n) < behaviour.pass_rate
    judged = (rng.random(n) < JUDGED_SHARE) & ~error
    delay = np.where(rng.random(n) < 0.5, JUDGE_DELAYS[0], JUDGE_DELAYS[1])
    return {
        "error": error,
        "ttft": ttft,
        "in_tokens": in_tokens,
        "out_tokens": out_tokens,
        "passed": passed & ~error,
        "failed": ~passed & ~error,
        "judged": judged,
        "delay": delay,
    }
