"""Per-window facts every method needs: is the data usable, and what one window says about an SLO.

Missing series, NaN and empty windows are reasons, never values: the callers turn them into
INCONCLUSIVE results, so that no data can never promote.
"""

from __future__ import annotations

import math

from llmrollout.analysis.messages import Formatter
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.results import SLOResult
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import Pricing

P95 = 0.95
NO_DATA = "series missing"
NOT_A_NUMBER = "NaN"
NO_REQUESTS = "no requests"


def data_problem(*values: float | None) -> str | None:
    """Why these inputs cannot be used, or None when they can."""
    if any(value is None for value in values):
        return NO_DATA
    if any(value is not None and math.isnan(value) for value in values):
        return NOT_A_NUMBER
    return None


def inconclusive(
    slo: str,
    label: str,
    variant: str,
    bound: float | None,
    reason: str,
    samples: int = 0,
    value: float | None = None,
) -> SLOResult:
    return SLOResult(
        slo=slo,
        variant=variant,
        value=value,
        bound=bound,
        samples=samples,
        verdict=Verdict.INCONCLUSIVE,
        message=f"{label} inconclusive on {variant}: {reason}",
    )


def compare_upper(
    slo: str,
    label: str,
    variant: str,
    value: float,
    bound: float,
    samples: int | None,
    fmt: Formatter,
    shown_value: str | None = None,
) -> SLOResult:
    """FAIL when value > bound; a value exactly at the bound is within the SLO."""
    failed = value > bound
    relation = ">" if failed else "<="
    shown = shown_value if shown_value is not None else fmt(value)
    sample_note = "" if samples is None else f" (n={samples})"
    return SLOResult(
        slo=slo,
        variant=variant,
        value=value,
        bound=bound,
        samples=samples or 0,
        verdict=Verdict.FAIL if failed else Verdict.PASS,
        message=f"{label} {shown} {relation} {fmt(bound)} on {variant}{sample_note}",
    )


def compare_lower(
    slo: str, label: str, variant: str, value: float, bound: float, samples: int | None, fmt: Formatter
) -> SLOResult:
    """FAIL when value < bound; a value exactly at the bound is within the SLO."""
    failed = value < bound
    relation = "<" if failed else ">="
    sample_note = "" if samples is None else f" (n={samples})"
    return SLOResult(
        slo=slo,
        variant=variant,
        value=value,
        bound=bound,
        samples=samples or 0,
        verdict=Verdict.FAIL if failed else Verdict.PASS,
        message=f"{label} {fmt(value)} {relation} {fmt(bound)} on {variant}{sample_note}",
    )


def mean_eval_score(window: VariantWindow) -> tuple[float | None, str | None]:
    """(mean score, None) or (None, why there is none)."""
    problem = data_problem(window.eval_score_sum, window.eval_score_count)
    if problem is not None:
        return None, problem
    assert window.eval_score_sum is not None and window.eval_score_count is not None
    if window.eval_score_count <= 0:
        return None, "no eval scores"
    return window.eval_score_sum / window.eval_score_count, None


def cost_per_request(window: VariantWindow, pricing: Pricing) -> tuple[float | None, str | None]:
    """(mean USD per request, None) or (None, why there is none).

    A token series is needed only when its price is non-zero, so a variant priced by output tokens
    alone does not go inconclusive for lack of an input-token series.
    """
    priced_series = [window.requests]
    if pricing.input_per_million_tokens > 0:
        priced_series.append(window.input_tokens)
    if pricing.output_per_million_tokens > 0:
        priced_series.append(window.output_tokens)
    problem = data_problem(*priced_series)
    if problem is not None:
        return None, problem
    assert window.requests is not None
    if window.requests <= 0:
        return None, NO_REQUESTS
    usd = 0.0
    if pricing.input_per_million_tokens > 0:
        usd += (window.input_tokens or 0.0) * pricing.input_per_million_tokens
    if pricing.output_per_million_tokens > 0:
        usd += (window.output_tokens or 0.0) * pricing.output_per_million_tokens
    return usd / 1e6 / window.requests, None
