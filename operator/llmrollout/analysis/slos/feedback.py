"""feedback.maxDownRateVsStable: users' thumbs-down share of their feedback, against stable's.

The share is down / (up + down) from llm_feedback_total{value="up"|"down"} (what `llmrollout judge`
exports from POST /v1/feedback). The bound is relative only: how much of feedback is thumbs-down depends
on the product and its users far more than on the model, so no absolute level means the same anywhere.

The sequential method judges it by the same two-sample count test as errorRate.maxIncreaseVsStable:
thumbs-down among feedback, the candidate's against stable's (H0: the same share; H1: (1 + bound) x
stable's). Given a window's thumbs-down, which version each fell on is the evidence, so the test decides
on downs: where neither version gets any, nothing clears it before the horizon, which then clears it
(feedback, and no sign of harm); without any feedback on the candidate the horizon rolls back.
"""

from __future__ import annotations

import math

import numpy as np

from llmrollout.analysis.checks import data_problem, inconclusive
from llmrollout.analysis.hypotheses import CountTest, LookInput, SequentialConfig, SLOLook, nan_to_missing
from llmrollout.analysis.messages import count, format_ratio
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.results import FEEDBACK_MAX_DOWN, SLOResult
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import FeedbackSLO, Pricing, SLOs

NO_FEEDBACK = "no feedback"


def _share(window: VariantWindow) -> tuple[float | None, float, str | None]:
    """(thumbs-down share, feedback count, None) or (None, count, why there is no share)."""
    problem = data_problem(window.feedback_up, window.feedback_down)
    if problem is not None:
        return None, 0.0, problem
    assert window.feedback_up is not None and window.feedback_down is not None
    total = window.feedback_up + window.feedback_down
    if total <= 0:
        return None, 0.0, NO_FEEDBACK
    return window.feedback_down / total, total, None


def increase(candidate_share: float, stable_share: float) -> float:
    """The candidate's share relative to stable's, minus 1 (0.2: 20% more thumbs-down); where stable
    has none, 0 when the candidate has none either, else infinitely more."""
    if stable_share > 0:
        return candidate_share / stable_share - 1.0
    return 0.0 if candidate_share == 0 else math.inf


def evaluate_threshold(slo: FeedbackSLO, window: VariantWindow, baseline: VariantWindow | None) -> SLOResult:
    bound = slo.max_down_rate_vs_stable
    variant = window.variant
    if baseline is None:
        return inconclusive(FEEDBACK_MAX_DOWN, "feedback thumbs-down", variant, bound, "no stable baseline")
    label = f"feedback thumbs-down vs {baseline.variant}"
    share, total, problem = _share(window)
    if share is None:
        return inconclusive(FEEDBACK_MAX_DOWN, label, variant, bound, problem or NO_FEEDBACK)
    stable_share, stable_total, stable_problem = _share(baseline)
    if stable_share is None:
        reason = f"{stable_problem or NO_FEEDBACK} on {baseline.variant}"
        return inconclusive(FEEDBACK_MAX_DOWN, label, variant, bound, reason, count(total))
    value = increase(share, stable_share)
    failed = value > bound
    relation = ">" if failed else "<="
    return SLOResult(
        slo=FEEDBACK_MAX_DOWN,
        variant=variant,
        value=value,
        bound=bound,
        samples=count(total),
        verdict=Verdict.FAIL if failed else Verdict.PASS,
        message=f"{label}: share {format_ratio(share)} vs {format_ratio(stable_share)}, {relation}"
        f" {1 + bound:g}x {baseline.variant}'s on {variant} (n={count(total)} vs {count(stable_total)})",
    )


def observe(look: LookInput, slo: FeedbackSLO, config: SequentialConfig) -> SLOLook:
    c_up, c_down = look.candidate.feedback()
    s_up, s_down = look.stable.feedback()
    n = look.replicates
    bound = slo.max_down_rate_vs_stable
    test = CountTest(
        key=f"{FEEDBACK_MAX_DOWN}@{bound:g}",
        slo=FEEDBACK_MAX_DOWN,
        what="thumbs-down share",
        candidate_events=c_down,
        candidate_exposure=c_up + c_down,
        stable_events=s_down,
        stable_exposure=s_up + s_down,
        null=np.full(n, config.ratio_null),
        alternative=np.full(n, 1.0 + bound),
        relative=True,
    )
    missing = nan_to_missing(c_up, c_down)
    if look.stable_required:
        missing = missing | nan_to_missing(s_up, s_down)
    reason = look.missing_reason("feedback_up", "feedback_down")
    with np.errstate(divide="ignore", invalid="ignore"):
        c_share = c_down / (c_up + c_down)
        s_share = s_down / (s_up + s_down)
        estimate = np.where(s_share > 0, c_share / s_share - 1.0, np.where(c_share == 0, 0.0, np.nan))
    label = f"feedback thumbs-down vs {look.stable_name}"
    return SLOLook(FEEDBACK_MAX_DOWN, label, bound, (test,), missing, reason, estimate)


class Feedback:
    field = "feedback"
    hard_by_default = False

    def helpful_fields(self, slos: SLOs) -> tuple[str, ...]:
        return ()

    def fields(self, slos: SLOs) -> tuple[str, ...]:
        return () if slos.feedback is None else ("feedback_up", "feedback_down")

    def rollback_tests(self, slos: SLOs) -> int:
        return 0 if slos.feedback is None else 1

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        return [] if slos.feedback is None else [evaluate_threshold(slos.feedback, window, baseline)]

    def observe(
        self, look: LookInput, slos: SLOs, pricing: Pricing | None, config: SequentialConfig
    ) -> list[SLOLook]:
        return [] if slos.feedback is None else [observe(look, slos.feedback, config)]
