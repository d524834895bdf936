"""What is simulated: the two versions' behaviour, the scenarios, the SLOs and the rollout schedule.

Every request is independent. A request fails with the version's error rate; a successful one has a
lognormal time to first token (TTFT), gamma-distributed input and output token counts, and with
probability JUDGED_SHARE gets a pass/fail verdict from a binary judge (score 1 or 0) that arrives one
or two intervals later. This mirrors the e2e model server (tests/e2e/harness/modelserver.py): errors
have no TTFT or tokens, only successful responses are judged, and TTFT uses the same bucket edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from itertools import pairwise
from statistics import NormalDist

from llmrollout.api.spec import Pricing, SLOs

# Traffic is simulated in slots of SLOT_SECONDS; Prometheus scrapes every SCRAPE_SECONDS by default
# (the grid the threshold policies' increase() reads); the analysis interval is INTERVAL_SECONDS.
SLOT_SECONDS = 15.0
SCRAPE_SECONDS = SLOT_SECONDS
INTERVAL_SECONDS = 60.0
SLOTS_PER_INTERVAL = round(INTERVAL_SECONDS / SLOT_SECONDS)
# The scrape intervals the benchmark reads counters at: the default, then Prometheus' own default
# (1 minute) and the e2e harness' fast one, for our policy at TARGET_RPS only.
EXTRA_SCRAPE_SECONDS = (60.0, 1.0)
TARGET_RPS = 10.0
CAP_MINUTES = 60  # a rollout still undecided after this long counts as undecided
STEPS = (5, 10, 25, 50)  # candidate weight, percent; passing the last step promotes (to 100)
MIN_REQUESTS = 100
FALSE_ROLLBACK_RATE = 0.01
MISS_RATE = 0.05
FAILURE_LIMITS = (1, 2, 3)
# Verdicts for the requests of one interval arrive this many intervals later (half each).
JUDGE_DELAYS = (1, 2)
JUDGED_SHARE = 0.2

# The e2e model server's TTFT bucket edges (a unit test keeps them equal).
TTFT_EDGES: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.5, 2, 3, 5, 10)
# Tokens per request: vLLM's 1-2-5 buckets (build_1_2_5_buckets) over the range that matters here.
TOKEN_EDGES: tuple[float, ...] = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

Z95 = NormalDist().inv_cdf(0.95)
TTFT_SIGMA = 0.5
# Stable's TTFT p95 sits on a bucket edge, so "share above stable's p95" is exactly 5%: the
# representation in which REFERENCE.md states Wald's bound (5% -> 13.1% for p95 +30%).
STABLE_TTFT_P95 = 0.5
TTFT_MEDIAN = STABLE_TTFT_P95 / math.exp(TTFT_SIGMA * Z95)
TTFT_Q90 = TTFT_MEDIAN * math.exp(TTFT_SIGMA * NormalDist().inv_cdf(0.90))

ERROR_RATE = 0.01
PASS_RATE = 0.90
INPUT_TOKENS, INPUT_SHAPE = 500.0, 4.0
OUTPUT_TOKENS, OUTPUT_SHAPE = 300.0, 2.0
PRICING = Pricing.model_validate({"inputPerMillionTokens": 0.15, "outputPerMillionTokens": 0.60})
BASE_COST_USD = (
    INPUT_TOKENS * PRICING.input_per_million_tokens + OUTPUT_TOKENS * PRICING.output_per_million_tokens
) / 1e6

# What a user who knows stable's numbers would write: headroom over stable on every SLO.
SLO_SPEC = SLOs.model_validate(
    {
        "quality": {"maxDropVsStable": 0.03},
        "ttft": {"p95": "800ms", "maxIncreaseVsStable": 0.2},
        "errorRate": {"max": 0.02, "maxIncreaseVsStable": 1.0},
        "costPerRequest": {"maxUSD": 0.0004, "maxIncreaseVsStable": 0.1},
    }
)
ERROR_RATE_MAX = 0.02
QUALITY_MAX_DROP = 0.03
TTFT_P95_MAX = 0.8
COST_MAX_USD = 0.0004
COST_MAX_INCREASE = 0.1

# The rollout horizon (strategy.maxDuration): every rollout of ours ends by then.
HORIZON_MINUTES = CAP_MINUTES
# The horizons the operator's plan asks for at these rates for these SLOs (status.plan.neededMinutes, so
# that the horizon's rule errs within falseRollbackRate and missRate: 99-114 minutes at TARGET_RPS; at
# 1 request/s from 24 hours at its first forecast of quality to 17 by minute 60, as stable's failure
# share sharpens), rounded; ours also runs there on the healthy scenarios and design points.
PLANNED_HORIZON_MINUTES = {TARGET_RPS: 120, 1.0: 1260}

WARMUP_SECONDS = 120.0
OUTAGE_START, OUTAGE_END, OUTAGE_ERROR_RATE = 120.0, 240.0, 0.30


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _erlang_cdf(x: float, shape: float, mean: float) -> float:
    """The gamma CDF for a whole-number shape (the token counts' shapes are)."""
    k, rate = round(shape), shape / mean
    terms = sum((rate * x) ** i / math.factorial(i) for i in range(k))
    return 1.0 - math.exp(-rate * x) * terms


def token_bin_probabilities(mean: float, shape: float) -> list[float]:
    """Probability of each token bucket (TOKEN_EDGES, then +Inf) for gamma(shape) tokens with `mean`."""
    cumulative = [_erlang_cdf(edge, shape, mean) for edge in TOKEN_EDGES]
    bins = [cumulative[0], *(b - a for a, b in pairwise(cumulative)), 1.0 - cumulative[-1]]
    return [max(p, 0.0) for p in bins]


@dataclass(frozen=True)
class Behaviour:
    """One version's request distribution at one moment."""

    error_rate: float = ERROR_RATE
    pass_rate: float = PASS_RATE
    ttft_scale: float = 1.0  # multiplies every TTFT: a whole-distribution shift
    # TTFTs above tail_from are stretched to tail_from * (x / tail_from) ** tail_power: only the tail moves.
    tail_from: float = math.inf
    tail_power: float = 1.0
    output_tokens: float = OUTPUT_TOKENS

    def ttft_cdf(self, x: float) -> float:
        if x <= 0:
            return 0.0
        if x > self.tail_from:
            x = self.tail_from * (x / self.tail_from) ** (1.0 / self.tail_power)
        return _normal_cdf(math.log(x / (TTFT_MEDIAN * self.ttft_scale)) / TTFT_SIGMA)

    def ttft_bin_probabilities(self) -> list[float]:
        """Probability of each bucket (the finite edges, then +Inf), summing to 1."""
        cumulative = [self.ttft_cdf(edge) for edge in TTFT_EDGES]
        bins = [cumulative[0], *(b - a for a, b in pairwise(cumulative))]
        bins.append(1.0 - cumulative[-1])
        return [max(p, 0.0) for p in bins]

    def ttft_exceedance(self, edge: float = STABLE_TTFT_P95) -> float:
        return 1.0 - self.ttft_cdf(edge)

    def ttft_p95(self) -> float:
        low, high = 0.0, 100.0
        for _ in range(100):
            middle = (low + high) / 2
            low, high = (middle, high) if self.ttft_cdf(middle) < 0.95 else (low, middle)
        return high


STABLE = Behaviour()


def cost_per_request(behaviour: Behaviour) -> float:
    """Mean cost per request in USD (errors cost nothing: they have no tokens)."""
    per_answer = (
        INPUT_TOKENS * PRICING.input_per_million_tokens
        + behaviour.output_tokens * PRICING.output_per_million_tokens
    ) / 1e6
    return (1.0 - behaviour.error_rate) * per_answer


def _output_tokens_for_cost(usd: float) -> float:
    """Mean output tokens at which stable's other behaviour costs `usd` per request."""
    per_answer = usd / (1.0 - ERROR_RATE) * 1e6
    return (per_answer - INPUT_TOKENS * PRICING.input_per_million_tokens) / PRICING.output_per_million_tokens


_TOKENS_AT_MAX = _output_tokens_for_cost(COST_MAX_USD)
_TOKENS_AT_TWICE = _output_tokens_for_cost(2 * COST_MAX_USD)
_STABLE_COST = (1.0 - ERROR_RATE) * BASE_COST_USD
_TOKENS_AT_INCREASE = _output_tokens_for_cost((1 + COST_MAX_INCREASE) * _STABLE_COST)
_TOKENS_AT_TWICE_INCREASE = _output_tokens_for_cost((1 + 2 * COST_MAX_INCREASE) * _STABLE_COST)
# "At the bound" within rounding: a regression built to sit on a bound counts as breaching it.
_AT = 1e-9


def breached_bounds(behaviour: Behaviour) -> list[str]:
    """The bounds SLO_SPEC states that `behaviour` (a candidate against STABLE) reaches or passes."""
    breached: list[str] = []
    errors = SLO_SPEC.error_rate
    if errors is not None:
        if behaviour.error_rate >= errors.max - _AT:
            breached.append("errorRate.max")
        increase = errors.max_increase_vs_stable
        if increase is not None and behaviour.error_rate >= (1 + increase) * STABLE.error_rate - _AT:
            breached.append("errorRate.maxIncreaseVsStable")
    quality = SLO_SPEC.quality
    drop = None if quality is None else quality.max_drop_vs_stable
    if drop is not None and STABLE.pass_rate - behaviour.pass_rate >= drop - _AT:
        breached.append("quality.maxDropVsStable")
    ttft = SLO_SPEC.ttft
    if ttft is not None:
        p95, stable_p95 = behaviour.ttft_p95(), STABLE.ttft_p95()
        # The p95 is found by bisection: allow its precision.
        if p95 >= ttft.p95.total_seconds() * (1 - 1e-6):
            breached.append("ttft.p95")
        increase = ttft.max_increase_vs_stable
        if increase is not None and p95 >= (1 + increase) * stable_p95 * (1 - 1e-6):
            breached.append("ttft.maxIncreaseVsStable")
    cost = SLO_SPEC.cost_per_request
    if (
        cost is not None
        and cost.max_usd is not None
        and cost_per_request(behaviour) >= cost.max_usd * (1 - 1e-9)
    ):
        breached.append("costPerRequest.maxUSD")
    increase = None if cost is None else cost.max_increase_vs_stable
    if increase is not None and cost_per_request(behaviour) >= (1 + increase) * cost_per_request(STABLE) * (
        1 - 1e-9
    ):
        breached.append("costPerRequest.maxIncreaseVsStable")
    return breached


def tail_power_for(p95_factor: float) -> float:
    """The stretch above stable's p90 that multiplies the p95 by p95_factor, leaving the body alone."""
    return 1.0 + math.log(p95_factor) / math.log(STABLE_TTFT_P95 / TTFT_Q90)


@dataclass(frozen=True)
class Scenario:
    name: str
    family: str  # healthy | errors | quality | ttft | tokens: what regressed, if anything
    candidate: Behaviour = field(default_factory=Behaviour)
    warmup: bool = False  # the candidate's first WARMUP_SECONDS are slow and error-prone
    outage: bool = False  # an upstream outage fails requests on both versions for two minutes

    @property
    def regression(self) -> bool:
        return self.family != "healthy"

    @property
    def must_catch(self) -> bool:
        """Whether the candidate breaches a bound the SLOs state: a miss then is a wrong decision
        the method promises to keep below missRate."""
        return self.regression and bool(breached_bounds(self.candidate))

    def steady(self, minute: int) -> bool:
        """Whether both versions behave as in steady state throughout the window ending at `minute`
        (no warm-up, no outage in it)."""
        start = (minute - 1) * INTERVAL_SECONDS
        times = [start + k * SLOT_SECONDS for k in range(SLOTS_PER_INTERVAL)]
        return all(
            self.behaviour(True, t) == self.candidate and self.behaviour(False, t) == STABLE for t in times
        )

    def behaviour(self, candidate: bool, seconds: float) -> Behaviour:
        """The behaviour of a version during the scrape slot starting at `seconds` into the rollout."""
        behaviour = self.candidate if candidate else STABLE
        if self.warmup and candidate and seconds < WARMUP_SECONDS:
            behaviour = replace(
                behaviour, error_rate=2 * behaviour.error_rate, ttft_scale=1.5 * behaviour.ttft_scale
            )
        if self.outage and OUTAGE_START <= seconds < OUTAGE_END:
            behaviour = replace(behaviour, error_rate=OUTAGE_ERROR_RATE)
        return behaviour


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("healthy: identical", "healthy"),
    # Within the 10% relative tolerance the analysis once applied to every rate it compares. Against
    # today's H0s (SequentialConfig: errors no worse than stable, quality 10% of maxDrop, cost 30% of
    # maxIncreaseVsStable) its errors (x1.05), pass rate (0.5 points down) and cost (+3.5%) sit between
    # H0 and H1, where neither of a test's error rates is bounded by its design.
    Scenario(
        "healthy: within tolerance",
        "healthy",
        Behaviour(error_rate=0.0105, pass_rate=0.895, ttft_scale=1.01, output_tokens=OUTPUT_TOKENS * 1.05),
    ),
    Scenario("healthy: warm-up spike", "healthy", warmup=True),
    Scenario("healthy: outage on both", "healthy", outage=True),
    Scenario("errors 1% -> 1.5%", "errors", Behaviour(error_rate=0.015)),
    Scenario("errors 1% -> 2%", "errors", Behaviour(error_rate=0.02)),
    Scenario("errors 1% -> 4%", "errors", Behaviour(error_rate=0.04)),
    Scenario("errors 1% -> 5%", "errors", Behaviour(error_rate=0.05)),
    Scenario("pass rate 90% -> 87%", "quality", Behaviour(pass_rate=0.87)),
    Scenario("pass rate 90% -> 85%", "quality", Behaviour(pass_rate=0.85)),
    Scenario("pass rate 90% -> 84%", "quality", Behaviour(pass_rate=0.84)),
    Scenario("pass rate 90% -> 80%", "quality", Behaviour(pass_rate=0.80)),
    Scenario("TTFT p95 +20% (shift)", "ttft", Behaviour(ttft_scale=1.2)),
    Scenario("TTFT p95 +30% (shift)", "ttft", Behaviour(ttft_scale=1.3)),
    Scenario("TTFT p95 +40% (shift)", "ttft", Behaviour(ttft_scale=1.4)),
    Scenario("TTFT p95 +100% (shift)", "ttft", Behaviour(ttft_scale=2.0)),
    Scenario("TTFT p95 +30% (tail)", "ttft", Behaviour(tail_from=TTFT_Q90, tail_power=tail_power_for(1.3))),
    Scenario("TTFT p95 +100% (tail)", "ttft", Behaviour(tail_from=TTFT_Q90, tail_power=tail_power_for(2.0))),
    Scenario("output tokens +20%", "tokens", Behaviour(output_tokens=OUTPUT_TOKENS * 1.2)),
    Scenario(
        f"cost +10% (output tokens +{100 * (_TOKENS_AT_INCREASE / OUTPUT_TOKENS - 1):.0f}%)",
        "tokens",
        Behaviour(output_tokens=_TOKENS_AT_INCREASE),
    ),
    Scenario(
        f"cost +20% (output tokens +{100 * (_TOKENS_AT_TWICE_INCREASE / OUTPUT_TOKENS - 1):.0f}%)",
        "tokens",
        Behaviour(output_tokens=_TOKENS_AT_TWICE_INCREASE),
    ),
    Scenario(
        f"cost at maxUSD (output tokens +{100 * (_TOKENS_AT_MAX / OUTPUT_TOKENS - 1):.0f}%)",
        "tokens",
        Behaviour(output_tokens=_TOKENS_AT_MAX),
    ),
    Scenario(
        f"cost at 2x maxUSD (output tokens +{100 * (_TOKENS_AT_TWICE / OUTPUT_TOKENS - 1):.0f}%)",
        "tokens",
        Behaviour(output_tokens=_TOKENS_AT_TWICE),
    ),
)
# Per family, the regression at exactly the SLOs' tightest stated bound: the design point, the H1 the
# oracle SPRT tests healthy candidates against.
DESIGN_POINTS = {
    "errors": "errors 1% -> 2%",
    "quality": "pass rate 90% -> 87%",
    "ttft": "TTFT p95 +20% (shift)",
    "tokens": next(s.name for s in SCENARIOS if s.name.startswith("cost +10%")),
}


def scenario(name: str) -> Scenario:
    for candidate in SCENARIOS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)
