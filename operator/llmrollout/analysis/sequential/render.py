"""Words for one replicate's typed results: the operator's SLOResults and reasons, with the numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from llmrollout.analysis.hypotheses import BreachCount, MeanTest, SequentialConfig
from llmrollout.analysis.messages import count, format_number, format_ratio, format_seconds, format_usd
from llmrollout.analysis.results import SLOResult
from llmrollout.analysis.sequential.engine import (
    FAIL,
    PASS,
    BatchEvaluation,
    How,
    SLODecision,
    TestReport,
    mean_estimate,
)
from llmrollout.analysis.verdict import Verdict

FloatArray = NDArray[np.float64]
FORMATS = {"ttft": format_seconds, "latency": format_seconds, "costPerRequest": format_usd}


def _fmt(slo: str, value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    for prefix, fmt in FORMATS.items():
        if slo.startswith(prefix):
            return fmt(value)
    return format_number(value) if slo.startswith("custom.") else format_ratio(value)


def _rate(events: float, exposure: float) -> str:
    return format_ratio(events / exposure) if exposure > 0 else "n/a"


def _mean(total: float, observations: float) -> str:
    return format_number(total / observations) if observations > 0 else "n/a"


def describe_test(report: TestReport, stable: str, i: int = 0) -> str:
    """One test's evidence so far, e.g. "error rate 0.012 vs v1 0.010 (n=812 vs 15,230): LLR -1.20,
    rolls back at 6.52, clears at -2.99"."""
    test = report.test
    if isinstance(test, BreachCount):
        return f"{int(report.candidate_events[i])} breaching looks in a row"
    if isinstance(test, MeanTest):
        level = "rollback" if test.direction == "max" else "miss"
        lower, upper = report.mean_bounds(i)
        return (
            f"{test.what} bounds {_fmt(test.slo, lower)}.."
            f"{_fmt(test.slo, upper)} (n={count(float(report.candidate_exposure[i]))}; "
            f"lower at the {level} level)"
        )
    ce, cx = float(report.candidate_events[i]), float(report.candidate_exposure[i])
    llr = float(report.log_evidence[i])
    tail = f"LLR {llr:.2f}, rolls back at {report.rollback_at:.2f}, clears at {report.clear_at:.2f}"
    if report.rollback_evidence is not None and report.h1_rollback_at != report.rollback_at:
        mixed = float(report.rollback_evidence[i])
        # Where the steeper H1 adds nothing, the mixture is H1's share of it: the LLR alone rolls back
        # at h1_rollback_at, and the mixture is not worth a number in every message.
        if mixed - (llr - (report.h1_rollback_at - report.rollback_at)) > 0.005:
            tail = (
                f"LLR {llr:.2f} ({mixed:.2f} with a steeper H1 mixed in), rolls back at"
                f" {report.rollback_at:.2f} (mixed), clears at {report.clear_at:.2f}"
            )
        else:
            tail = (
                f"LLR {llr:.2f}, rolls back at {report.h1_rollback_at:.2f}, clears at {report.clear_at:.2f}"
            )
    if test.two_sample:
        se, sx = float(report.stable_events[i]), float(report.stable_exposure[i])
        if test.applicable is not None and not bool(test.applicable[i]):
            return f"{test.what} vs {stable}: left out ({test.left_out})"
        if not bool(test.ready[i] if test.ready is not None else True):
            return f"{test.what}: waiting for enough of {stable}'s data to set the test up"
        if test.bucketed:
            # The histograms are compared bucket by bucket; their means say what the test is about.
            return (
                f"{test.what} {_mean(ce, cx)} vs {stable} {_mean(se, sx)} (n={count(cx)} vs {count(sx)}; "
                f"H1 {stable}'s distribution x{float(test.alternative[i]):.2f}, bucket by bucket): {tail}"
            )
        return (
            f"{test.what} {_rate(ce, cx)} vs {stable} {_rate(se, sx)} (n={count(cx)} vs {count(sx)}; "
            f"H1 ratio {float(test.alternative[i]):.2f} vs H0 {float(test.null[i]):.2f}): {tail}"
        )
    return (
        f"{test.what} {_rate(ce, cx)} (n={count(cx)}; H1 {format_ratio(float(test.alternative[i]))} vs "
        f"H0 {format_ratio(float(test.null[i]))}): {tail}"
    )


def slo_result(
    decision: SLODecision,
    candidate: str,
    stable: str,
    horizon: str,
    values: Mapping[str, FloatArray],
    i: int = 0,
) -> SLOResult:
    look = decision.look
    value = float(look.estimate[i])
    shown = _fmt(look.slo, value)
    bound = _fmt(look.slo, look.bound) if math.isfinite(look.bound) else "its relative bound"
    how = How(int(decision.how[i]))
    reports = decision.tests
    details = "; ".join(describe_test(r, stable, i) for r in _worth_describing(reports, i))
    samples = (
        float(reports[0].candidate_exposure[i])
        if reports and not isinstance(reports[0].test, BreachCount)
        else 0.0
    )
    verdict = Verdict(int(decision.verdict[i]))
    if how == How.HORIZON_ROLLED_BACK and not reports:
        message = (
            f"{look.label} on {candidate} undecided at the horizon ({horizon}) with nothing that could clear "
            f"it: {look.missing_reason}"
        )
    elif how == How.HORIZON_ROLLED_BACK:
        decider = reports[int(decision.decided_by[i])] if decision.decided_by[i] >= 0 else reports[0]
        seen = float(decider.candidate_exposure[i]) > 0 and decider.test_ready(i)
        leaning = "the evidence leaned to a breach" if seen else "no evidence could clear it"
        message = (
            f"{look.label} on {candidate} undecided at the horizon ({horizon}) and {leaning}: "
            f"{describe_test(decider, stable, i)}"
        )
    elif how == How.ROLLED_BACK:
        decider = reports[int(decision.decided_by[i])] if decision.decided_by[i] >= 0 else reports[0]
        message = _rollback_message(look.label, decider, candidate, stable, shown, bound, i)
    elif how == How.SEVERE_WARMUP:
        message = _severe_message(decision, candidate, stable, values, i)
    elif how == How.CLEARED:
        message = f"{look.label} {shown} this window, within {bound} on {candidate}: cleared ({details})"
    elif how == How.HORIZON_CLEARED:
        message = (
            f"{look.label} {shown} this window on {candidate}: undecided at the horizon ({horizon}), the "
            f"evidence leaned to within {bound} ({details})"
        )
    elif how == How.WARMUP:
        message = f"{look.label} {shown} this window on {candidate}: warm-up, not counted as evidence"
    elif how == How.MISSING:
        message = f"{look.label} inconclusive on {candidate}: {look.missing_reason}"
    else:
        message = f"{look.label} {shown} this window on {candidate}, gathering evidence ({details})"
    return SLOResult(
        slo=look.slo,
        variant=candidate,
        value=value if math.isfinite(value) else None,
        bound=look.bound,
        samples=count(samples),
        verdict=verdict,
        message=message,
    )


def _worth_describing(reports: tuple[TestReport, ...], i: int) -> tuple[TestReport, ...]:
    """The tests that say something about replicate i: a test standing aside (it only watches for a
    rollback on the other route) says nothing until it has counted something."""

    def says_something(report: TestReport) -> bool:
        clears = getattr(report.test, "clears", None)
        return clears is None or bool(clears[i]) or float(report.candidate_exposure[i]) > 0

    worth = tuple(report for report in reports if says_something(report))
    return worth or reports


def _rollback_message(
    label: str, report: TestReport, candidate: str, stable: str, shown: str, bound: str, i: int
) -> str:
    test = report.test
    if isinstance(test, BreachCount):
        breaches = int(report.candidate_events[i])
        return f"{label} {shown} outside {bound} on {candidate}; {breaches} breaching looks in a row"
    if isinstance(test, MeanTest):
        relation = ">" if test.direction == "max" else "<"
        mean = float(mean_estimate(report)[i])
        lower, upper = report.mean_bounds(i)
        side, which = (lower, "lower") if test.direction == "max" else (upper, "upper")
        return (
            f"{label} {_fmt(test.slo, mean)} {relation} {bound} on {candidate} ({which} bound "
            f"{_fmt(test.slo, side)}, n={count(float(report.candidate_exposure[i]))})"
        )
    if test.two_sample or test.relative:
        evidence = describe_test(report, stable, i)
        return f"{label} on {candidate} worse than {stable} beyond its relative bound: {evidence}"
    return f"{label} {shown} > {bound} on {candidate}: {describe_test(report, stable, i)}"


def _severe_message(
    decision: SLODecision, candidate: str, stable: str, values: Mapping[str, FloatArray], i: int
) -> str:
    look = decision.look
    c_events, c_exposure, s_events, s_exposure = (
        float(values.get(f"warmup.{look.slo}.{name}", [math.nan])[i])
        for name in ("cEvents", "cExposure", "sEvents", "sExposure")
    )
    what = "error rate" if look.slo == "errorRate" else f"share above {_fmt(look.slo, look.bound)}"
    return (
        f"{look.label} on {candidate} severely breached during warm-up: {what} {_rate(c_events, c_exposure)}"
        f" vs {stable}'s {_rate(s_events, s_exposure)} (n={count(c_exposure)}), which rolls back even before"
        " warm-up windows count as evidence"
    )


def reason(
    evaluation: BatchEvaluation,
    results: list[SLOResult],
    candidate: str,
    config: SequentialConfig,
    i: int = 0,
) -> str:
    verdict = int(evaluation.verdict[i])
    failed = [r for r in results if r.verdict == Verdict.FAIL]
    if verdict == FAIL and failed:
        text = failed[0].message
    elif evaluation.warming:
        assert evaluation.warmup_ends is not None
        until = datetime.fromtimestamp(evaluation.warmup_ends, UTC).strftime("%H:%M:%S")
        text = (
            f"warm-up of {candidate} until {until} UTC ({config.warmup_seconds:g}s from its first window): "
            "not counted as evidence; only a severe breach rolls back"
        )
    elif not results:
        text = "no SLOs configured: nothing can justify a promotion"
    elif verdict == PASS:
        text = f"all {len(results)} SLOs cleared on {candidate}"
        if evaluation.at_horizon:
            text += " (some at the horizon, by the evidence they leaned to)"
    elif bool(evaluation.passes_step[i]):
        cleared = sum(r.verdict == Verdict.PASS for r in results)
        text = (
            f"step passes on no evidence of harm on {candidate}: no test crossed its rollback boundary and "
            f"no estimate is far beyond its bound ({cleared} of {len(results)} SLOs cleared; the final step "
            "needs all)"
        )
    else:
        holding = [r for r in results if r.verdict == Verdict.INCONCLUSIVE]
        text = holding[0].message if holding else "holding"
    if not evaluation.fresh:
        text += " (this window was already counted)"
    return text
