"""The sequential method: two-sided sequential tests whose error rates are fixed in advance.

Every configured SLO states the regression that must be caught (its absolute bound, and its bound
relative to stable: maxIncreaseVsStable, quality.maxDropVsStable) and is judged by tests that stay
valid at every look (hypotheses.py; the SLO families in analysis/slos/ build them):

- counts (errors, judged failures, requests above a latency bucket edge) by Wald's SPRT (sprt.py):
  it rolls back when the evidence for the regression reaches (1 - missRate) / alpha_test and clears
  the SLO when the evidence against it reaches (1 - alpha_test) / missRate;
- means (eval scores for minScore, cost per request) by confidence sequences at the same levels;
- custom queries, which admit no test, by consecutive breaching looks (outside the guarantee).

falseRollbackRate is split evenly (Bonferroni) across the tests, so a healthy candidate is rolled
back with probability at most about falseRollbackRate over the whole rollout; a candidate at one of
the stated bounds is promoted with probability at most about missRate. The final step promotes only
when every SLO is cleared; earlier steps pass on "no evidence of harm" (no test crossed its rollback
boundary and no pooled estimate is beyond twice the regression its test must catch, on the log
scale), so that the rollout reaches the traffic where evidence accumulates fast. At the horizon
(strategy.maxDuration) every open test is decided by the rule fixed in advance: it goes the way its
evidence leans (sprt.truncate).

A new candidate's first windows (SequentialConfig.warmup_seconds) count as evidence for nothing
except a severe breach, and are when stable's data choose what a relative bound means (the bucket
edge nearest stable's p95, stable's eval failure share). Missing data is INCONCLUSIVE, never PASS.

The kernels (engine.py) work on arrays of replicates: the operator judges a batch of one, the
decision benchmark thousands, with the same code; render.py words one replicate's results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmrollout.analysis.batch import WindowBatch
from llmrollout.analysis.hypotheses import SequentialConfig
from llmrollout.analysis.observations import Window
from llmrollout.analysis.results import SLOResult
from llmrollout.analysis.sequential.engine import BatchEvaluation, How, SLODecision, evaluate_batch
from llmrollout.analysis.sequential.render import describe_test, reason, slo_result
from llmrollout.analysis.sequential.state import STATE_VERSION, SequentialState, load_state
from llmrollout.analysis.slos import rollback_test_count
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import Pricing, SLOs


@dataclass(frozen=True)
class SequentialEvaluation:
    """One look, for the operator: results with messages, the next state and the overall verdict."""

    results: list[SLOResult]
    state: SequentialState
    verdict: Verdict
    reason: str
    passes_step: bool  # the step may pass (the final one only when every SLO is cleared)
    warming: bool
    data_missing: bool  # some SLO lacks this window's data and nothing has decided it
    batch: BatchEvaluation


def evaluate_sequential(
    slos: SLOs,
    window: Window,
    *,
    candidate: str,
    stable: str,
    state: SequentialState | None,
    false_rollback_rate: float,
    miss_rate: float = 0.05,
    pricing: Pricing | None,
    candidate_weight: int,
    final_step: bool = True,
    at_horizon: bool = False,
    horizon: str = "",
    config: SequentialConfig | None = None,
) -> SequentialEvaluation:
    """evaluate_batch for the operator's one rollout, worded. Stable needs data only while it still
    gets traffic (candidate_weight < 100)."""
    config = config or SequentialConfig()
    batch = evaluate_batch(
        slos,
        WindowBatch.from_window(window, candidate, stable),
        candidate=candidate,
        stable=stable,
        state=state,
        false_rollback_rate=false_rollback_rate,
        miss_rate=miss_rate,
        pricing=pricing,
        stable_required=candidate_weight < 100,
        final_step=np.array([final_step]),
        at_horizon=at_horizon,
        config=config,
    )
    results = [
        slo_result(decision, candidate, stable, horizon, batch.state.values) for decision in batch.slos
    ]
    failures = dict(batch.state.failures)
    # The message of the look that rolled an SLO back stays the one shown, whatever later data say.
    for result in results:
        if result.verdict == Verdict.FAIL and result.slo not in failures:
            failures[result.slo] = result.message
    results = [
        SLOResult(r.slo, r.variant, r.value, r.bound, r.samples, r.verdict, failures[r.slo])
        if r.verdict == Verdict.FAIL and r.slo in failures
        else r
        for r in results
    ]
    batch.state.failures = {
        slo: message for slo, message in failures.items() if any(r.slo == slo for r in results)
    }
    missing = any(int(d.how[0]) == How.MISSING for d in batch.slos)
    return SequentialEvaluation(
        results=results,
        state=batch.state,
        verdict=Verdict(int(batch.verdict[0])),
        reason=reason(batch, results, candidate, config),
        passes_step=bool(batch.passes_step[0]),
        warming=batch.warming,
        data_missing=missing,
        batch=batch,
    )


__all__ = [
    "STATE_VERSION",
    "BatchEvaluation",
    "How",
    "SLODecision",
    "SequentialConfig",
    "SequentialEvaluation",
    "SequentialState",
    "describe_test",
    "evaluate_batch",
    "evaluate_sequential",
    "load_state",
    "rollback_test_count",
]
