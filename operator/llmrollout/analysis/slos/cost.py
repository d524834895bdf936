"""costPerRequest: token counts times the variant's prices, per request.

- maxUSD: a test of the mean cost per request, assuming no single request costs more than
  cost_cap_multiple x maxUSD (Prometheus gives sums per window, not each request's cost). Where the
  exporter has token histograms, they bound each window's sum of squared costs and the test reads
  its variance from them (bernstein.py); else it assumes the widest variance the cap allows
  (confidence.py).
- maxIncreaseVsStable: per priced token type (input, output), the candidate's histogram of tokens per
  request against stable's, bucket by bucket (sprt.bucket_ratio_llr). H1 is stable's distribution
  scaled up by as much as raises the mean cost per request by maxIncreaseVsStable through that token
  type alone; H0 the same with 30% of that increase (SequentialConfig.cost_null_share: a
  comfortably smaller one, as an absolute bound's H0 is half the bound). Stable's distribution and
  mean cost are chosen once, from its data pooled since the start, and kept in the state. A
  bucket-by-bucket test reads the whole distribution, which a mean's worst-case variance bound or a
  single edge's share cannot.
"""

from __future__ import annotations

import math

import numpy as np

from llmrollout.analysis import bernstein
from llmrollout.analysis.batch import HistogramBatch, SideBatch
from llmrollout.analysis.checks import (
    NO_DATA,
    compare_upper,
    cost_per_request,
    inconclusive,
)
from llmrollout.analysis.hypotheses import (
    BoolArray,
    CountTest,
    FloatArray,
    LookInput,
    MeanTest,
    SequentialConfig,
    SLOLook,
    Test,
    nan_to_missing,
)
from llmrollout.analysis.messages import count, format_usd
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.results import COST_PER_REQUEST, SLOResult
from llmrollout.analysis.shifts import (
    MIN_MOVED_SHARE,
    choose_rows,
    chosen_shift,
    common_buckets,
    moved_share,
    shifted_ratios,
)
from llmrollout.api.spec import CostSLO, Pricing, SLOs

TOKEN_TYPES = ("input", "output")


def evaluate_threshold(slo: CostSLO, window: VariantWindow, pricing: Pricing | None) -> SLOResult:
    label = "costPerRequest"
    variant = window.variant
    assert slo.max_usd is not None, "only maxUSD has a per-window threshold"
    if pricing is None:
        # Assuming a price of zero would pass any budget; a cost SLO without prices is a spec gap.
        return inconclusive(COST_PER_REQUEST, label, variant, slo.max_usd, f"no pricing for {variant}")
    usd, problem = cost_per_request(window, pricing)
    if usd is None:
        return inconclusive(COST_PER_REQUEST, label, variant, slo.max_usd, problem or NO_DATA)
    samples = count(window.requests or 0.0)
    return compare_upper(COST_PER_REQUEST, label, variant, usd, slo.max_usd, samples, format_usd)


def _price(pricing: Pricing, token_type: str) -> float:
    return pricing.input_per_million_tokens if token_type == "input" else pricing.output_per_million_tokens


def _usd(side: SideBatch, pricing: Pricing) -> FloatArray:
    usd = np.zeros(side.replicates)
    for token_type in TOKEN_TYPES:
        if _price(pricing, token_type) > 0:
            usd = usd + getattr(side, f"{token_type}_tokens") * _price(pricing, token_type) / 1e6
    return usd


def observe(look: LookInput, slo: CostSLO, pricing: Pricing | None, config: SequentialConfig) -> SLOLook:
    c = look.candidate
    n = look.replicates
    bound = math.nan if slo.max_usd is None else slo.max_usd
    if pricing is None:
        reason = f"no pricing for {look.candidate_name}"
        return SLOLook(
            COST_PER_REQUEST, "costPerRequest", bound, (), np.ones(n, bool), reason, np.full(n, np.nan)
        )
    usd = _usd(c, pricing)
    priced = [c.requests, *(getattr(c, f"{t}_tokens") for t in TOKEN_TYPES if _price(pricing, t) > 0)]
    missing = nan_to_missing(*priced)
    fields = ["requests", "input_tokens", "output_tokens"]
    tests: list[Test] = []
    problems: list[str] = []
    if slo.max_usd is not None:
        tests.append(
            MeanTest(
                key=COST_PER_REQUEST,
                slo=COST_PER_REQUEST,
                what="cost per request",
                total=usd,
                count=c.requests,
                bound=slo.max_usd,
                cap=config.cost_cap_multiple * slo.max_usd,
                direction="max",
                # H0 is half the bound, as for every absolute bound; roll back past the midpoint.
                rollback_level=0.75 * slo.max_usd,
                square=_usd_squares(c, pricing, usd, config.cost_cap_multiple * slo.max_usd),
            )
        )
    if slo.max_increase_vs_stable is not None:
        for token_type in TOKEN_TYPES:
            if _price(pricing, token_type) <= 0:
                continue
            attribute = f"{token_type}_tokens_per_request"
            fields.append(attribute)
            test = _versus_stable(look, slo.max_increase_vs_stable, pricing, token_type, config)
            tests.append(test)
            missing = missing | _histogram_missing(getattr(c, attribute))
            if look.stable_required:
                missing = missing | _histogram_missing(getattr(look.stable, attribute))
            coarse, advice = _too_coarse(test, getattr(look.stable, attribute), slo.max_increase_vs_stable)
            missing = missing | coarse
            if advice is not None:
                problems.append(advice)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where(c.requests > 0, usd / c.requests, np.nan)
    reason = problems[0] if problems else look.missing_reason(*fields)
    return SLOLook(COST_PER_REQUEST, "costPerRequest", bound, tuple(tests), missing, reason, estimate)


def _usd_squares(side: SideBatch, pricing: Pricing, usd: FloatArray, cap: float) -> FloatArray | None:
    """An upper bound on the window's sum of squared costs per request, where the token histograms
    give one: each request's tokens of a type at most its bucket's upper edge (the +Inf bucket's: the
    tokens that cost `cap`), the types combined by Minkowski's inequality; never above cap x the
    total, since no request costs more than cap. None without histograms (the mean test then assumes
    the widest variance); cap x the total in a window whose histogram is missing or disagrees with
    the token counter (its sum above what the buckets' upper edges allow)."""
    roots = np.zeros(side.replicates)
    for token_type in TOKEN_TYPES:
        price = _price(pricing, token_type) / 1e6
        if price <= 0:
            continue
        hist: HistogramBatch | None = getattr(side, f"{token_type}_tokens_per_request")
        if hist is None:
            return None
        uppers = np.array([*hist.edges, max(cap / price, *hist.edges[-1:])])
        squares = bernstein.histogram_squares(hist.cumulative, uppers, getattr(side, f"{token_type}_tokens"))
        roots = roots + np.where(np.isfinite(squares), price * np.sqrt(squares), np.inf)
    widest = cap * np.maximum(usd, 0.0)
    with np.errstate(invalid="ignore"):
        bounded: FloatArray = np.where(np.isfinite(roots), np.minimum(roots**2, widest), widest)
    return bounded


def _too_coarse(
    test: CountTest, stable: HistogramBatch | None, max_increase: float
) -> tuple[BoolArray, str | None]:
    """Where H1 moves too few of stable's requests across bucket edges for any window to tell H1 from
    H0 (answers of nearly one length, all inside one wide bucket): the SLO is then inconclusive, with
    the buckets to add, never judged on what the buckets cannot show."""
    if test.bucket_ratios is None or test.bucket_nulls is None or test.bucket_shares is None:
        return np.zeros(len(test.candidate_events), bool), None
    moved = moved_share(test.bucket_shares, test.bucket_nulls, test.bucket_ratios)
    coarse: BoolArray = np.isfinite(moved) & (moved < MIN_MOVED_SHARE)
    if not coarse[0] or stable is None:
        return coarse, None
    edges = ", ".join(f"{edge:g}" for edge in stable.edges) or "none"
    median = float(stable.quantile(0.5)[0])
    around = f" around {median:.0f}" if math.isfinite(median) else ""
    advice = (
        f"{test.what}: its buckets are too coarse for maxIncreaseVsStable {max_increase:g}: that increase"
        f" moves only {100 * float(moved[0]):.2g}% of requests across a bucket edge (edges: {edges});"
        f" add bucket edges{around}, at most 20% apart"
    )
    return coarse, advice


def _histogram_missing(hist: HistogramBatch | None) -> BoolArray:
    if hist is None:
        return np.array(True)
    return nan_to_missing(hist.total)


def _versus_stable(
    look: LookInput, max_increase: float, pricing: Pricing, token_type: str, config: SequentialConfig
) -> CountTest:
    """ "Mean cost per request at most maxIncrease above stable's", through one token type's histogram."""
    key = f"{COST_PER_REQUEST}/vsStable@{max_increase:g}/{token_type}"
    attribute = f"{token_type}_tokens_per_request"
    tokens = f"{token_type}_tokens"
    n = look.replicates
    c, s = look.candidate, look.stable
    candidate: HistogramBatch | None = getattr(c, attribute)
    stable: HistogramBatch | None = getattr(s, attribute)
    nan = np.full(n, np.nan)
    what = f"{token_type} tokens per request"
    if candidate is None or stable is None:
        # Nothing to add this look; the test stays open (the SLO cannot clear without it).
        empty = np.full((n, 1), np.nan)
        return CountTest(
            key, COST_PER_REQUEST, what, nan, nan, np.ones(n), nan, nan, nan,
            ready=np.zeros(n, bool), relative=True, candidate_buckets=empty, stable_buckets=empty,
            bucket_nulls=np.ones((n, 1)), bucket_ratios=np.ones((n, 1)), bucket_shares=empty,
        )  # fmt: skip
    c_counts, s_counts, edges = common_buckets(candidate, stable)
    if np.isnan(look.param(f"{key}.scale")).any():
        chosen = f"{key}.scale"
        pooled = look.pool(f"{key}.pool", np.cumsum(s_counts, axis=1), chosen)
        requests = look.pool(f"{key}.poolRequests", s.requests, chosen)
        usd = look.pool(f"{key}.poolUSD", _usd(s, pricing), chosen)
        spent = look.pool(f"{key}.poolTokens", getattr(s, tokens), chosen) * _price(pricing, token_type) / 1e6
        enough = (pooled[:, -1] >= config.stable_min_histogram) & (requests > 0) & (spent > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # Scaling this token type by `scale` raises the mean cost by (scale - 1) x its share of it.
            scale = 1.0 + max_increase * usd / spent
        look.choose(chosen, np.where(enough, scale, np.nan))
        ratios, shares = shifted_ratios(pooled, edges, look.param(chosen))
        nulls, _ = shifted_ratios(pooled, edges, 1.0 + config.cost_null_share * (look.param(chosen) - 1.0))
        choose_rows(look, f"{key}.ratios", ratios)
        choose_rows(look, f"{key}.nulls", nulls)
        choose_rows(look, f"{key}.shares", shares)
    scale = look.param(f"{key}.scale")
    ratios, nulls, shares, shift_set = chosen_shift(look, key, c_counts.shape)
    ready = np.isfinite(scale) & shift_set
    return CountTest(
        key=key,
        slo=COST_PER_REQUEST,
        what=what,
        candidate_events=getattr(c, tokens),
        candidate_exposure=c.requests,
        null=1.0 + config.cost_null_share * (scale - 1.0),
        alternative=scale,
        stable_events=getattr(s, tokens),
        stable_exposure=s.requests,
        ready=ready,
        relative=True,
        candidate_buckets=c_counts,
        stable_buckets=s_counts,
        bucket_nulls=nulls,
        bucket_ratios=ratios,
        bucket_shares=shares,
    )


class Cost:
    field = "cost_per_request"
    hard_by_default = False

    def fields(self, slos: SLOs) -> tuple[str, ...]:
        slo = slos.cost_per_request
        if slo is None:
            return ()
        histograms = (
            ()
            if slo.max_increase_vs_stable is None
            else tuple(f"{t}_tokens_per_request" for t in TOKEN_TYPES)
        )
        return ("requests", "input_tokens", "output_tokens", *histograms)

    def helpful_fields(self, slos: SLOs) -> tuple[str, ...]:
        # Token histograms bound the variance of the mean cost (maxUSD); maxIncreaseVsStable needs them.
        slo = slos.cost_per_request
        return () if slo is None else tuple(f"{t}_tokens_per_request" for t in TOKEN_TYPES)

    def rollback_tests(self, slos: SLOs) -> int:
        slo = slos.cost_per_request
        if slo is None:
            return 0
        return (slo.max_usd is not None) + (len(TOKEN_TYPES) if slo.max_increase_vs_stable is not None else 0)

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        # maxIncreaseVsStable is judged by the sequential method only, like every relative bound.
        slo = slos.cost_per_request
        return [] if slo is None or slo.max_usd is None else [evaluate_threshold(slo, window, pricing)]

    def observe(
        self, look: LookInput, slos: SLOs, pricing: Pricing | None, config: SequentialConfig
    ) -> list[SLOLook]:
        slo = slos.cost_per_request
        return [] if slo is None else [observe(look, slo, pricing, config)]
