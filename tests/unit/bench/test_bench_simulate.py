"""The simulator: what it counts is what Prometheus would report, and every policy sees one trace."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.decisions.model import (
    INTERVAL_SECONDS,
    JUDGED_SHARE,
    SCRAPE_SECONDS,
    SLOTS_PER_INTERVAL,
    STABLE,
    STEPS,
    TTFT_EDGES,
    Behaviour,
    scenario,
)
from bench.decisions.policies import Look, ThresholdPolicy
from bench.decisions.rollout import run
from bench.decisions.simulate import SLOTS, Slots, generate, read, request_level_slot

OFFSET = 1e-3  # scrapes happen just after each window starts, as in simulate.py's model


def prometheus_increase(times: list[float], values: list[float], start: float, end: float) -> float | None:
    """increase(counter[end - start]) at `end`, written from Prometheus 2.42's extrapolatedRate
    (promql/functions.go): samples in [start, end], counter resets, the zero point, and extrapolation
    to the range boundaries when the first/last sample is within 1.1 average intervals of them."""
    points = [(t, v) for t, v in zip(times, values, strict=True) if start <= t <= end]
    if len(points) < 2:
        return None
    result = points[-1][1] - points[0][1]
    last = 0.0
    for _, value in points:
        if value < last:
            result += last
        last = value
    to_start = points[0][0] - start
    to_end = end - points[-1][0]
    sampled = points[-1][0] - points[0][0]
    average = sampled / (len(points) - 1)
    if result > 0 and points[0][1] >= 0:
        to_zero = sampled * (points[0][1] / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return result * (interval / sampled)


def test_increase_matches_prometheus_on_request_level_traffic() -> None:
    rng = np.random.default_rng(1)
    minutes = 5
    scrapes = np.arange(minutes * SLOTS_PER_INTERVAL + 1) * SCRAPE_SECONDS + OFFSET
    # Requests at random times, each with a TTFT; a counter per bucket edge and one for +Inf.
    arrivals = np.sort(rng.uniform(0, minutes * INTERVAL_SECONDS, 3000))
    ttft = 0.2 * np.exp(0.5 * rng.standard_normal(len(arrivals)))
    edges = [*TTFT_EDGES, math.inf]
    slot_of = np.searchsorted(scrapes, arrivals, side="left")  # slot k: (scrape k-1, scrape k]
    for minute in range(1, minutes + 1):
        start, end = (minute - 1) * INTERVAL_SECONDS, minute * INTERVAL_SECONDS
        slots = np.arange((minute - 1) * SLOTS_PER_INTERVAL, minute * SLOTS_PER_INTERVAL)
        # The simulator's slot s holds what arrives between the scrapes that bracket it.
        per_slot = np.array([[np.sum((slot_of == s + 1) & (ttft <= edge)) for edge in edges] for s in slots])
        none = np.zeros((1, SLOTS_PER_INTERVAL))
        counts = Slots(
            requests=per_slot[None, :, -1].astype(float),
            errors=none,
            ttft=per_slot[None, :, :-1].astype(float),
            in_tokens=none,
            out_tokens=none,
            passed=none,
            failed=none,
            in_hist=np.zeros((1, SLOTS_PER_INTERVAL, 9)),
            out_hist=np.zeros((1, SLOTS_PER_INTERVAL, 9)),
        )
        window = read(counts, "increase")
        for k, edge in enumerate(edges):
            counter = [float(np.sum((arrivals <= t) & (ttft <= edge))) for t in scrapes]
            expected = prometheus_increase(scrapes.tolist(), counter, start, end)
            got = window.ttft_count[0] if math.isinf(edge) else window.ttft[0, k]
            assert expected is not None
            # The zero-point rule moves the first window by OFFSET / 45 s at most.
            assert got == pytest.approx(expected, rel=1e-4, abs=1e-9), (minute, edge)
        exact = read(counts, "exact")
        # Exact reads count everything between the scrapes that open this window and the next.
        in_window = (arrivals > start + OFFSET) & (arrivals <= end + OFFSET)
        assert exact.requests[0] == np.sum(in_window)


def test_cumulative_buckets_never_decrease() -> None:
    trace = generate(scenario("TTFT p95 +100% (tail)"), 10.0, 5, (3,))
    cumulative = trace.candidate.ttft
    assert np.all(np.diff(cumulative, axis=-1) >= 0)
    ok = trace.candidate.requests - trace.candidate.errors
    assert np.all(cumulative[..., -1] <= ok)


def test_sampled_aggregates_have_the_distribution_of_request_level_traffic() -> None:
    """The fast sampler draws slot totals directly; they must be distributed as the totals of
    requests generated one by one."""
    behaviour = Behaviour(error_rate=0.05, ttft_scale=1.3, output_tokens=360.0)
    rng = np.random.default_rng(2)
    mean_requests = 40.0
    slots = [request_level_slot(rng, behaviour, mean_requests) for _ in range(3000)]
    requests = np.array([len(s["error"]) for s in slots])
    errors = np.array([s["error"].sum() for s in slots])
    below_p95 = np.array([np.sum(s["ttft"] <= 0.5) for s in slots])
    out_tokens = np.array([s["out_tokens"].sum() for s in slots])
    judged = np.array([s["judged"].sum() for s in slots])

    item = scenario("healthy: identical")
    fast = generate(type(item)("probe", "errors", behaviour), 80.0 / 3, 3000 // 4, (4,))
    # 80/3 rps x 15 s x 10% (the second step) = 40 requests per slot.
    level = STEPS.index(10)
    trace = fast.candidate
    sampled = {
        "requests": trace.requests[level, :4].ravel(),
        "errors": trace.errors[level, :4].ravel(),
        "below_p95": trace.ttft[level, :4, :, TTFT_EDGES.index(0.5)].ravel(),
        "out_tokens": trace.out_tokens[level, :4].ravel(),
        "judged": sum(trace.verdicts[name][level, :4] for name in trace.verdicts).ravel(),
    }
    for name, values in (
        ("requests", requests),
        ("errors", errors),
        ("below_p95", below_p95),
        ("out_tokens", out_tokens),
        ("judged", judged),
    ):
        other = sampled[name]
        # Means within 4 standard errors, variances within 15%.
        error = 4 * math.sqrt(values.var() / len(values) + other.var() / len(other))
        assert abs(values.mean() - other.mean()) < error, name
        assert other.var() == pytest.approx(values.var(), rel=0.15), name
    ok_share = 1 - behaviour.error_rate
    assert judged.mean() == pytest.approx(mean_requests * ok_share * JUDGED_SHARE, rel=0.05)


def test_ttft_edges_are_the_e2e_model_servers() -> None:
    modelserver = pytest.importorskip("tests.e2e.harness.modelserver")
    assert tuple(map(float, modelserver.TTFT_BUCKETS)) == tuple(map(float, TTFT_EDGES))


def test_stable_p95_and_regressions_are_as_named() -> None:
    assert STABLE.ttft_p95() == pytest.approx(0.5, rel=1e-6)
    assert scenario("TTFT p95 +30% (shift)").candidate.ttft_p95() == pytest.approx(0.65, rel=1e-6)
    assert scenario("TTFT p95 +30% (tail)").candidate.ttft_p95() == pytest.approx(0.65, rel=1e-6)
    assert scenario("TTFT p95 +100% (tail)").candidate.ttft_p95() == pytest.approx(1.0, rel=1e-6)
    # The tail-only change leaves the median alone.
    assert scenario("TTFT p95 +100% (tail)").candidate.ttft_cdf(0.3) == pytest.approx(STABLE.ttft_cdf(0.3))
    # REFERENCE.md's exceedance example: p95 +30% moves the share above stable's p95 from 5% to 13.1%.
    assert STABLE.ttft_exceedance() == pytest.approx(0.05, abs=1e-9)
    assert scenario("TTFT p95 +30% (shift)").candidate.ttft_exceedance() == pytest.approx(0.131, abs=5e-4)


class Recorder(ThresholdPolicy):
    """A threshold policy that also remembers every window it was shown."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.seen: dict[tuple[int, int], tuple[float, ...]] = {}

    def look(self, look: Look) -> np.ndarray:
        for row, replicate in enumerate(look.index.tolist()):
            c, s = look.candidate, look.stable
            self.seen[(look.minute, replicate)] = (
                float(look.level[row]),
                float(c.requests[row]),
                float(c.errors[row]),
                float(c.passed[row]),
                float(s.requests[row]),
                float(s.failed[row]),
                *c.ttft[row].tolist(),
            )
        return super().look(look)


def test_common_random_numbers_every_policy_sees_the_same_trace() -> None:
    item = scenario("errors 1% -> 2%")
    first = Recorder("a")
    second = Recorder("b")
    # The same seed gives the same trace; a policy run in between changes nothing for the next one.
    run(first, generate(item, 10.0, 30, (9,)), "increase")
    run(ThresholdPolicy("other", 3), generate(item, 10.0, 30, (9,)), "increase")
    run(second, generate(item, 10.0, 30, (9,)), "increase")
    assert first.seen == second.seen
    # Policies on different paths still share every window in which they were at the same weight.
    trace = generate(item, 10.0, 30, (9,))
    lenient = Recorder("lenient")
    lenient.failure_limit = 3
    run(lenient, trace, "increase")
    shared = [key for key in first.seen if key in lenient.seen and first.seen[key][0] == lenient.seen[key][0]]
    assert len(shared) > 30
    assert all(first.seen[key][1:6] == lenient.seen[key][1:6] for key in shared if key[0] <= 2)
    assert trace.candidate.requests.shape == (len(STEPS), SLOTS, 30)
