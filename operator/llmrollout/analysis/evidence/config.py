"""The sequential method's knobs and fixed constants."""

from __future__ import annotations

from dataclasses import dataclass

P95_EXCEEDANCE = 0.05
# Windows are [start, end] in unix seconds; providers may round them, so allow a little overlap.
WINDOW_OVERLAP_SLACK_SECONDS = 1e-3
STEP_REQUEST_KEYS = ("candidate", "stable")
# Stable's p95 is read from one window; with fewer requests its rank lies in the highest bucket.
STABLE_P95_MIN_REQUESTS = 20
# The percentile SLOs' rate-ratio tests (the SLO's edge, stable's p95 edge) share the SLO's budget.
PERCENTILE_EDGE_TESTS = 2


@dataclass(frozen=True)
class SequentialConfig:
    """Knobs that the spec does not (yet) expose; the defaults are what the operator uses."""

    # H0 of the rate-ratio tests: candidate rate <= (1 + tolerance) x stable rate. Smaller catches
    # smaller regressions sooner; larger tolerates more before a healthy-enough candidate is rolled back.
    relative_tolerance: float = 0.1
    # Per SLO: the chance that a truly breached SLO still lets a step pass.
    pass_miscoverage: float = 0.05
    # Assumed per-request cost ceiling, as a multiple of costPerRequest.maxUSD.
    cost_cap_multiple: float = 10.0
    custom_breaches_to_fail: int = 2
    # A new candidate's first windows (those starting within this many seconds of its first window's
    # start) are not counted as evidence: cold caches, JIT and autoscaling make a healthy candidate
    # look worse for a minute or two, and an anytime-valid test never forgets what it has counted.
    warmup_seconds: float = 120.0
    # ... except a severe breach: during warm-up, the candidate is rolled back when the error rate, or
    # the share of requests above a p95 SLO, over the warm-up windows so far exceeds this multiple of
    # what the SLO allows (errorRate.max; 5% above the p95 bound) on at least this many requests.
    warmup_severe_multiple: float = 5.0
    warmup_severe_min_requests: int = 50
