"""What the operator reads from Prometheus for one variant over one analysis window.

Only aggregates, never per-request data: counters' increases over the window and cumulative
histogram buckets, as exact differences of the scraped values (no extrapolation), so that consecutive
windows add up to the counters' true increase. A field is None when the
series was missing or the query failed; the analysis treats None as "inconclusive", never as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts over the window: ((upper_bound, count), ...), sorted, ending at +Inf."""

    buckets: tuple[tuple[float, float], ...]

    @property
    def count(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0

    def count_above(self, bound: float) -> float:
        """Observations above the largest bucket edge <= bound (a conservative exceedance count)."""
        below = 0.0
        for upper, cumulative in self.buckets:
            if upper <= bound:
                below = cumulative
        return self.count - below


@dataclass(frozen=True)
class VariantWindow:
    variant: str
    requests: float | None = None
    errors: float | None = None
    ttft: Histogram | None = None
    latency: Histogram | None = None
    # The scores' histogram, where the exporter has one (llmrollout's judge does): it bounds their
    # variance.
    eval_score: Histogram | None = None
    eval_score_sum: float | None = None
    eval_score_count: float | None = None
    eval_passed: float | None = None
    eval_failed: float | None = None
    input_tokens: float | None = None
    output_tokens: float | None = None
    # Tokens per request, where the exporter has histograms of them (vLLM, OTel): what a bound on
    # cost relative to stable's is judged on.
    input_tokens_per_request: Histogram | None = None
    output_tokens_per_request: Histogram | None = None
    feedback_up: float | None = None
    feedback_down: float | None = None
    custom: dict[str, float | None] = field(default_factory=dict)
    # Field name -> the series that was looked for and not found, so a condition can name it; a field
    # listed here is None. Field name -> the metric names its value was read from (which preset
    # alternative matched), for explaining a value.
    missing: dict[str, str] = field(default_factory=dict)
    found: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """One analysis window for every variant that was asked about."""

    start: float  # unix seconds
    end: float
    variants: dict[str, VariantWindow]
    problems: tuple[str, ...] = ()  # query failures, in words, for conditions and Events
    scrape_interval: float | None = None  # seconds, as the provider was told; for messages
