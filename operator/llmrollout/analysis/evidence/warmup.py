"""A new candidate's warm-up: its first windows count as evidence for nothing, except a severe breach.

Cold caches, JIT and autoscaling make a healthy candidate look worse for a minute or two, and an
anytime-valid test never forgets what it has counted. See SequentialConfig.warmup_*.
"""

from __future__ import annotations

from llmrollout.analysis.checks import finite_nonnegative
from llmrollout.analysis.evidence.look import Look
from llmrollout.analysis.evidence.state import Sums
from llmrollout.analysis.messages import count, format_ratio
from llmrollout.analysis.results import SLOResult
from llmrollout.analysis.verdict import Verdict


def window_share(total: float | None, requests: float | None) -> float | None:
    if not finite_nonnegative(total, requests) or not requests:
        return None
    assert total is not None and requests is not None
    return min(total, requests) / requests


def severe_breach(
    look: Look,
    slo: str,
    label: str,
    bound: float,
    value: float | None,
    sums: Sums,
    stable_sums: Sums,
    allowed: float,
    what: str,
) -> SLOResult | None:
    """FAIL when a warm-up's share (errors, or requests above a p95 bound) is a severe breach: more
    than warmup_severe_multiple x both what the SLO allows and stable's share over the same windows
    (an outage that hits both versions is not the candidate's fault)."""
    config = look.config
    mean = sums.mean
    if mean is None or sums.count < config.warmup_severe_min_requests:
        return None
    stable_mean = stable_sums.mean
    reference = max(allowed, stable_mean or 0.0)
    if mean <= config.warmup_severe_multiple * reference:
        return None
    shown_stable = "n/a" if stable_mean is None else format_ratio(stable_mean)
    message = (
        f"{label} on {look.candidate_name} severely breached during warm-up: {what} {format_ratio(mean)} > "
        f"{config.warmup_severe_multiple:g}x the SLO's {format_ratio(allowed)} and {look.stable_name}'s "
        f"{shown_stable} (n={count(sums.count)}), which rolls back even before warm-up windows count "
        "as evidence"
    )
    return look.result(slo, Verdict.FAIL, value, bound, sums.count, message)


def warming(
    look: Look,
    slo: str,
    label: str,
    bound: float | None,
    value: float | None,
    problem: str | None,
    shown: str,
) -> SLOResult:
    if problem is not None:
        return look.inconclusive(slo, label, bound, f"{problem} (warm-up)")
    if value is None:
        return look.inconclusive(slo, label, bound, "no data this window (warm-up)")
    message = f"{label} {shown} this window on {look.candidate_name}: warm-up, not counted as evidence"
    return look.result(slo, Verdict.INCONCLUSIVE, value, bound, 0, message)
