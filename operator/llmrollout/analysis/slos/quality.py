"""quality.minScore and quality.maxDropVsStable: eval scores in [0, 1] and pass/fail verdicts."""

from __future__ import annotations

from llmrollout.analysis.checks import (
    NO_DATA,
    compare_lower,
    compare_upper,
    data_problem,
    inconclusive,
    mean_eval_score,
)
from llmrollout.analysis.confidence import lower_confidence_bound, upper_confidence_bound
from llmrollout.analysis.evidence import Look, Sums
from llmrollout.analysis.evidence.warmup import warming, window_share
from llmrollout.analysis.messages import confidence_label, count, format_ratio
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.ratio_test import RateRatioTest
from llmrollout.analysis.results import QUALITY_MAX_DROP, QUALITY_MIN_SCORE, SLOResult
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import Pricing, QualitySLO, SLOs


def evaluate_threshold(
    slo: QualitySLO, window: VariantWindow, baseline: VariantWindow | None
) -> list[SLOResult]:
    results: list[SLOResult] = []
    variant = window.variant
    mean, problem = mean_eval_score(window)
    samples = count(window.eval_score_count or 0.0)
    if slo.min_score is not None:
        label = "quality mean"
        if mean is None:
            results.append(inconclusive(QUALITY_MIN_SCORE, label, variant, slo.min_score, problem or NO_DATA))
        else:
            results.append(
                compare_lower(QUALITY_MIN_SCORE, label, variant, mean, slo.min_score, samples, format_ratio)
            )
    if slo.max_drop_vs_stable is not None:
        bound = slo.max_drop_vs_stable
        if baseline is None:
            results.append(
                inconclusive(QUALITY_MAX_DROP, "quality drop", variant, bound, "no stable baseline")
            )
            return results
        label = f"quality drop vs {baseline.variant}"
        baseline_mean, baseline_problem = mean_eval_score(baseline)
        if mean is None:
            results.append(inconclusive(QUALITY_MAX_DROP, label, variant, bound, problem or NO_DATA, samples))
        elif baseline_mean is None:
            reason = f"{baseline_problem or NO_DATA} on {baseline.variant}"
            results.append(inconclusive(QUALITY_MAX_DROP, label, variant, bound, reason, samples))
        else:
            drop = baseline_mean - mean
            results.append(
                compare_upper(QUALITY_MAX_DROP, label, variant, drop, bound, samples, format_ratio)
            )
    return results


def evaluate_sequential(look: Look, slo: QualitySLO) -> list[SLOResult]:
    candidate, stable = look.candidate, look.stable
    problem = data_problem(candidate.eval_score_sum, candidate.eval_score_count)
    candidate_sums = look.updated_sums(
        "quality.candidate", candidate.eval_score_sum, candidate.eval_score_count
    )
    results: list[SLOResult] = []
    if slo.min_score is not None:
        results.append(_min_score(look, slo.min_score, candidate_sums, problem))
    if slo.max_drop_vs_stable is not None:
        stable_problem = look.stable_problem(
            stable.eval_score_sum if stable else None, stable.eval_score_count if stable else None
        )
        stable_sums = look.updated_sums(
            "quality.stable",
            stable.eval_score_sum if stable else None,
            stable.eval_score_count if stable else None,
        )
        fail_test = look.updated_ratio_test(
            "quality.evalFailRate",
            candidate.eval_failed,
            stable.eval_failed if stable else None,
            _judged(candidate),
            _judged(stable) if stable else None,
        )
        results.append(
            _max_drop(
                look, slo.max_drop_vs_stable, candidate_sums, stable_sums, fail_test, problem, stable_problem
            )
        )
    return results


def _judged(window: VariantWindow) -> float | None:
    if window.eval_passed is None or window.eval_failed is None:
        return None
    return window.eval_passed + window.eval_failed


def _min_score(look: Look, min_score: float, sums: Sums, problem: str | None) -> SLOResult:
    label = "quality mean"
    mean = sums.mean
    if mean is not None:
        rollback_upper = upper_confidence_bound(sums.total, sums.count, look.rollback_miscoverage)
        if rollback_upper < min_score:
            message = (
                f"{label} {format_ratio(mean)} < {format_ratio(min_score)} on {look.candidate_name} "
                f"({confidence_label(look.rollback_miscoverage)} upper bound "
                f"{format_ratio(rollback_upper)}, n={count(sums.count)})"
            )
            return look.result(QUALITY_MIN_SCORE, Verdict.FAIL, mean, min_score, sums.count, message)
    if problem is not None:
        return look.inconclusive(QUALITY_MIN_SCORE, label, min_score, problem, mean, sums.count)
    if mean is None:
        return look.inconclusive(QUALITY_MIN_SCORE, label, min_score, "no eval scores")
    miscoverage = look.config.pass_miscoverage
    lower = lower_confidence_bound(sums.total, sums.count, miscoverage)
    evidence = f"{confidence_label(miscoverage)} lower bound {format_ratio(lower)}, n={count(sums.count)}"
    if lower >= min_score:
        message = (
            f"{label} {format_ratio(mean)} >= {format_ratio(min_score)} on {look.candidate_name} ({evidence})"
        )
        return look.result(QUALITY_MIN_SCORE, Verdict.PASS, mean, min_score, sums.count, message)
    if mean >= min_score:
        relation = f"{format_ratio(mean)} >= {format_ratio(min_score)}"
        look.harmless(QUALITY_MIN_SCORE, label, relation, evidence)
    reason = f"{format_ratio(mean)}, {evidence}; lower bound not yet >= {format_ratio(min_score)}"
    return look.inconclusive(QUALITY_MIN_SCORE, label, min_score, reason, mean, sums.count)


def _drop_lower_bound(candidate: Sums, stable: Sums, miscoverage: float) -> float:
    """Lower bound on stable mean - candidate mean; each version's sequence gets half the miscoverage."""
    stable_lower = lower_confidence_bound(stable.total, stable.count, miscoverage / 2)
    return stable_lower - upper_confidence_bound(candidate.total, candidate.count, miscoverage / 2)


def _drop_upper_bound(candidate: Sums, stable: Sums, miscoverage: float) -> float:
    stable_upper = upper_confidence_bound(stable.total, stable.count, miscoverage / 2)
    return stable_upper - lower_confidence_bound(candidate.total, candidate.count, miscoverage / 2)


def _max_drop(
    look: Look,
    max_drop: float,
    candidate: Sums,
    stable: Sums,
    fail_test: RateRatioTest,
    problem: str | None,
    stable_problem: str | None,
) -> SLOResult:
    label = f"quality drop vs {look.stable_name}"
    drop = None if candidate.mean is None or stable.mean is None else stable.mean - candidate.mean
    if drop is not None:
        rollback_lower = _drop_lower_bound(candidate, stable, look.rollback_miscoverage)
        if rollback_lower > max_drop:
            message = (
                f"{label} {format_ratio(drop)} > {format_ratio(max_drop)} on {look.candidate_name} "
                f"({confidence_label(look.rollback_miscoverage)} lower bound "
                f"{format_ratio(rollback_lower)}, n={count(candidate.count)} vs {count(stable.count)})"
            )
            return look.result(QUALITY_MAX_DROP, Verdict.FAIL, drop, max_drop, candidate.count, message)
    failure = look.ratio_failure(QUALITY_MAX_DROP, "eval failures", max_drop, drop, fail_test, "failed share")
    if failure is not None:
        return failure
    if problem is not None:
        return look.inconclusive(QUALITY_MAX_DROP, label, max_drop, problem, drop, candidate.count)
    if stable_problem is not None:
        reason = f"{stable_problem} on {look.stable_name}"
        return look.inconclusive(QUALITY_MAX_DROP, label, max_drop, reason, drop, candidate.count)
    if drop is None:
        missing = look.candidate_name if candidate.mean is None else look.stable_name
        return look.inconclusive(QUALITY_MAX_DROP, label, max_drop, f"no eval scores on {missing}")
    miscoverage = look.config.pass_miscoverage
    upper = _drop_upper_bound(candidate, stable, miscoverage)
    evidence = (
        f"{confidence_label(miscoverage)} upper bound {format_ratio(upper)}, "
        f"n={count(candidate.count)} vs {count(stable.count)}"
    )
    if fail_test.candidate_exposure > 0:
        evidence += "; eval failures " + look.ratio_note(fail_test)
    if upper <= max_drop:
        message = (
            f"{label} {format_ratio(drop)} <= {format_ratio(max_drop)} on {look.candidate_name} ({evidence})"
        )
        return look.result(QUALITY_MAX_DROP, Verdict.PASS, drop, max_drop, candidate.count, message)
    if drop <= max_drop:
        look.harmless(QUALITY_MAX_DROP, label, f"{format_ratio(drop)} <= {format_ratio(max_drop)}", evidence)
    reason = f"{format_ratio(drop)}, {evidence}; upper bound not yet <= {format_ratio(max_drop)}"
    return look.inconclusive(QUALITY_MAX_DROP, label, max_drop, reason, drop, candidate.count)


def evaluate_warmup(look: Look, slo: QualitySLO) -> list[SLOResult]:
    candidate, stable = look.candidate, look.stable
    results: list[SLOResult] = []
    problem = data_problem(candidate.eval_score_sum, candidate.eval_score_count)
    mean = window_share(candidate.eval_score_sum, candidate.eval_score_count)
    if slo.min_score is not None:
        shown = "n/a" if mean is None else format_ratio(mean)
        results.append(warming(look, QUALITY_MIN_SCORE, "quality mean", slo.min_score, mean, problem, shown))
    if slo.max_drop_vs_stable is not None:
        stable_mean = (
            window_share(stable.eval_score_sum, stable.eval_score_count) if stable is not None else None
        )
        drop = None if mean is None or stable_mean is None else stable_mean - mean
        shown = "n/a" if drop is None else format_ratio(drop)
        label = f"quality drop vs {look.stable_name}"
        results.append(warming(look, QUALITY_MAX_DROP, label, slo.max_drop_vs_stable, drop, problem, shown))
    return results


class Quality:
    field = "quality"
    hard_by_default = False

    def rollback_tests(self, slos: SLOs) -> int:
        if slos.quality is None:
            return 0
        # maxDropVsStable has two: the drop in mean score and the eval failure rate ratio.
        return (slos.quality.min_score is not None) + 2 * (slos.quality.max_drop_vs_stable is not None)

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        return [] if slos.quality is None else evaluate_threshold(slos.quality, window, baseline)

    def sequential(self, look: Look, slos: SLOs, pricing: Pricing | None) -> list[SLOResult]:
        return [] if slos.quality is None else evaluate_sequential(look, slos.quality)

    def warmup(self, look: Look, slos: SLOs, pricing: Pricing | None) -> list[SLOResult]:
        return [] if slos.quality is None else evaluate_warmup(look, slos.quality)
