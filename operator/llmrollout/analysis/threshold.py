"""The threshold method (Flagger/Argo-style): each window's value against each SLO's bound.

No evidence is pooled across windows and nothing is corrected for looking every interval; this is
the familiar behaviour for users who ask for it (`analysis.method: threshold`). Missing series,
NaN and empty windows are INCONCLUSIVE, never PASS: no data must never promote, and unlike
Flagger it is not a failure either (no traffic is not evidence of a bad candidate). Each SLO
family's `threshold` (llmrollout.analysis.slos) judges its own SLOs.
"""

from __future__ import annotations

import dataclasses

from llmrollout.analysis.checks import NO_DATA
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.results import SLOResult
from llmrollout.analysis.slos import FAMILIES
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import Pricing, SLOs


def evaluate_variant(
    slos: SLOs, window: VariantWindow, pricing: Pricing | None, baseline: VariantWindow | None = None
) -> list[SLOResult]:
    """One result per configured SLO for this variant's window, in a fixed order.

    `baseline` is the stable version's window for quality.maxDropVsStable; without it that SLO is
    inconclusive. Evaluating stable against its own window gives a drop of exactly 0.
    """
    results = []
    for family in FAMILIES:
        # A result that lacks data names the series looked for, as the sequential method's do.
        named = [window.missing[f] for f in family.fields(slos) if f in window.missing]
        for result in family.threshold(slos, window, baseline, pricing):
            if named and result.verdict == Verdict.INCONCLUSIVE and result.message.endswith(NO_DATA):
                result = dataclasses.replace(  # noqa: PLW2901 - the same result, named
                    result, message=f"{result.message}: {', '.join(dict.fromkeys(named))}"
                )
            results.append(result)
    return results


def evaluate_threshold(
    slos: SLOs, candidate: VariantWindow, stable: VariantWindow | None, pricing_candidate: Pricing | None
) -> list[SLOResult]:
    """The candidate's results, with the stable window as the quality baseline."""
    return evaluate_variant(slos, candidate, pricing_candidate, baseline=stable)
