"""quality.minScore and quality.maxDropVsStable: eval scores in [0, 1] and pass/fail verdicts.

- minScore: a test of the candidate's mean score (scores in [0, 1] need no cap), its variance
  bounded by the scores' histogram where the exporter has one (bernstein.py; llmrollout's judge
  exports it), else as if every score were 0 or 1 (confidence.py).
- maxDropVsStable, by one of two routes chosen once from stable's data (so each has all of missRate):
  - where stable fails at least maxDrop of the time, the judged failures, candidate against stable
    (SPRT). A drop of the pass rate by maxDrop is a failure-rate ratio of (f + maxDrop) / f at
    stable's failure share f (one standard error up, from stable's pooled verdicts); H0 a drop by
    SequentialConfig.quality_null_share of it;
  - else the mean scores: an e-process on the two means (difference.py), their variance bounded by
    the scores' histograms where the exporter has them (else confidence sequences on both means).
    Needed when scores move without many verdicts turning to "fail" (continuous scores, rare
    failures).
"""

from __future__ import annotations

import numpy as np

from llmrollout.analysis import bernstein
from llmrollout.analysis.batch import SideBatch
from llmrollout.analysis.checks import (
    NO_DATA,
    compare_lower,
    compare_upper,
    inconclusive,
    mean_eval_score,
)
from llmrollout.analysis.hypotheses import (
    CountTest,
    FloatArray,
    LookInput,
    MeanTest,
    SequentialConfig,
    SLOLook,
    nan_to_missing,
    share_one_se_up,
)
from llmrollout.analysis.messages import count, format_ratio
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.results import QUALITY_MAX_DROP, QUALITY_MIN_SCORE, SLOResult
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


def _min_score(look: LookInput, min_score: float) -> SLOLook:
    c = look.candidate
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(c.eval_score_count > 0, c.eval_score_sum / c.eval_score_count, np.nan)
    test = MeanTest(
        key=f"{QUALITY_MIN_SCORE}@{min_score:g}",
        slo=QUALITY_MIN_SCORE,
        what="mean score",
        total=c.eval_score_sum,
        count=c.eval_score_count,
        bound=min_score,
        # H1 is the bound, H0 halfway to a perfect score: roll back past the midpoint of the two.
        rollback_level=min_score + (1 - min_score) / 4,
        cap=1.0,
        direction="min",
        square=_score_squares(c),
    )
    missing = nan_to_missing(c.eval_score_sum, c.eval_score_count)
    reason = look.missing_reason("eval_score_sum", "eval_score_count")
    return SLOLook(QUALITY_MIN_SCORE, "quality mean", min_score, (test,), missing, reason, mean)


def _score_squares(side: SideBatch) -> FloatArray | None:
    """An upper bound on the window's sum of squared scores from their histogram, each score at its
    bucket's upper edge (at most 1); None without one. Where the histogram does not cover the count
    or the sum, the widest bound (a score in [0, 1] is at least its square)."""
    hist = side.eval_score
    if hist is None:
        return None
    uppers = np.array([*(min(edge, 1.0) for edge in hist.edges), 1.0])
    total = side.eval_score_sum
    squares = bernstein.histogram_squares(hist.cumulative, uppers, total)
    widest = np.maximum(total, 0.0)
    with np.errstate(invalid="ignore"):
        covers = np.isfinite(squares) & (hist.total >= side.eval_score_count - 0.5)
    bounded: FloatArray = np.where(covers, np.minimum(squares, widest), widest)
    return bounded


def _judged(passed: np.ndarray, failed: np.ndarray) -> np.ndarray:
    judged: np.ndarray = passed + failed
    return judged


FAILURES, SCORES = 1.0, 2.0


def _route(
    look: LookInput, key: str, max_drop: float, config: SequentialConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(route, stable's failure share), chosen once from stable's data pooled since the start: the
    judged failures where stable fails at least maxDrop of the time (a binary judge: its counts are
    the whole information, and the SPRT uses it best), else the mean scores (continuous scores, rare
    failures). Each route then has the whole of missRate. NaN while stable has too little data, or
    while its failure share is too close to maxDrop to tell which side it is on (at most until
    stable_route_max_judged verdicts; then the estimate's side)."""
    s = look.stable
    if np.isnan(look.param(f"{key}.route")).any():
        failed = look.pool(f"{key}.poolFailed", s.eval_failed, f"{key}.route")
        judged = look.pool(f"{key}.poolJudged", _judged(s.eval_passed, s.eval_failed), f"{key}.route")
        scored = look.pool(f"{key}.poolScored", s.eval_score_count, f"{key}.route")
        with np.errstate(divide="ignore", invalid="ignore"):
            share = failed / judged
        upper = share_one_se_up(failed, judged)
        low, high = _wilson_bounds(failed, judged, config.stable_route_z)
        # A judge failing 10% of stable's answers showed under 3% in 2% of first looks at ~55
        # verdicts, and the mean scores' route (weaker on a binary judge's scores) then rarely
        # decided before the horizon.
        sure = (low >= max_drop) | (high < max_drop) | (judged >= config.stable_route_max_judged)
        enough_verdicts = judged >= config.stable_min_judged
        only_scores = (judged <= 0) & (scored >= config.stable_min_judged)
        route = np.where(
            enough_verdicts,
            np.where(sure, np.where(share >= max_drop, FAILURES, SCORES), np.nan),
            np.where(only_scores, SCORES, np.nan),
        )
        look.choose(f"{key}.route", route)
        look.choose(f"{key}.stableFailShare", np.where(enough_verdicts, upper, np.nan))
    return look.param(f"{key}.route"), look.param(f"{key}.stableFailShare")


def _wilson_bounds(events: np.ndarray, trials: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score interval for a share, z standard errors each side (NaN without trials). Not
    confidence.py's sequences: the route only picks the more powerful test (each keeps its error
    rates), and bounds valid at every look would keep a judge that never fails from clearing a
    maxDrop of 0.1 at 50 verdicts (their 95% bound is 10.5% there) or one of 0.03 before 200."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = events / trials
        scale = 1 + z**2 / trials
        centre = (share + z**2 / (2 * trials)) / scale
        half = z * np.sqrt(share * (1 - share) / trials + z**2 / (4 * trials**2)) / scale
    low: np.ndarray = centre - half
    high: np.ndarray = centre + half
    return low, high


def _stable_fail_share(
    look: LookInput,
    key: str,
    stable_failed: np.ndarray,
    stable_judged: np.ndarray,
    first_share: np.ndarray,
    config: SequentialConfig,
) -> np.ndarray:
    """Stable's failure share f for this window's H1, one standard error up: from all of stable's
    verdicts before this window, so that H1 sharpens as they accumulate (the share chosen with the
    route rests on as few as stable_min_judged verdicts, and one from 50 put H1 anywhere between
    a ratio of 1.1 and 1.6, leaving many healthy candidates open at the horizon). Until those
    verdicts are as many as the route's, the route's share stands."""
    failed = look.running_total(f"{key}.stableFailed", stable_failed)
    judged = look.running_total(f"{key}.stableJudged", stable_judged)
    running = share_one_se_up(failed, judged)
    share: np.ndarray = np.where(judged >= config.stable_min_judged, running, first_share)
    return share


def _max_drop(look: LookInput, max_drop: float, config: SequentialConfig) -> SLOLook:
    c, s = look.candidate, look.stable
    key = f"{QUALITY_MAX_DROP}@{max_drop:g}"
    c_judged = _judged(c.eval_passed, c.eval_failed)
    s_judged = _judged(s.eval_passed, s.eval_failed)
    route, first_share = _route(look, key, max_drop, config)
    share = _stable_fail_share(look, key, s.eval_failed, s_judged, first_share, config)
    # A drop of the pass rate by maxDrop is a failure-rate ratio of (f + maxDrop) / f, H0's drop a
    # share of it; where stable (almost) never fails, the failures only watch for a regression, at
    # half the drop's rate as f.
    floor = np.maximum(share, max_drop / 2)
    rho1 = (floor + max_drop) / floor
    rho0 = (floor + config.quality_null_share * max_drop) / floor
    # The failures count once stable's share sets their H1, even while the route waits for more of
    # stable's verdicts: a binary judge's route is the failures, and loses none of them to the wait.
    # The scores' test starts with its route (its worst-case forecast would otherwise fill the plan).
    chosen = np.isfinite(route)
    armed = np.isfinite(rho1) | (route == SCORES)
    rho1 = np.where(np.isfinite(rho1), rho1, 3.0)
    failures = CountTest(
        key=key,
        slo=QUALITY_MAX_DROP,
        what="failed share",
        candidate_events=c.eval_failed,
        candidate_exposure=c_judged,
        stable_events=s.eval_failed,
        stable_exposure=s_judged,
        null=np.where(np.isfinite(rho0), rho0, 1.0),
        alternative=rho1,
        ready=armed,
        # Until a route is chosen neither test stands aside.
        clears=~chosen | (route == FAILURES),
    )
    scores = MeanTest(
        key=f"{QUALITY_MAX_DROP}.scores@{max_drop:g}",
        slo=QUALITY_MAX_DROP,
        what="mean score drop",
        total=c.eval_score_sum,
        count=c.eval_score_count,
        stable_total=s.eval_score_sum,
        stable_count=s.eval_score_count,
        bound=max_drop,
        # H0 is no drop at all, H1 the bound: roll back once the drop is beyond doubt past halfway.
        rollback_level=max_drop / 2,
        cap=1.0,
        direction="max",
        square=_score_squares(c),
        stable_square=_score_squares(s),
        ready=chosen,
        clears=~chosen | (route == SCORES),
    )
    # Missing only when neither route has its data: verdict counts, or scores.
    missing = nan_to_missing(c.eval_passed, c.eval_failed) & nan_to_missing(
        c.eval_score_sum, c.eval_score_count
    )
    stable_missing = nan_to_missing(s.eval_passed, s.eval_failed) & nan_to_missing(
        s.eval_score_sum, s.eval_score_count
    )
    if look.stable_required:
        missing = missing | stable_missing
    reason = look.missing_reason("eval_passed", "eval_failed", "eval_score_sum", "eval_score_count")
    with np.errstate(divide="ignore", invalid="ignore"):
        verdicts_drop = np.where(
            (c_judged > 0) & (s_judged > 0), s.eval_passed / s_judged - c.eval_passed / c_judged, np.nan
        )
        scores_drop = np.where(
            (c.eval_score_count > 0) & (s.eval_score_count > 0),
            s.eval_score_sum / s.eval_score_count - c.eval_score_sum / c.eval_score_count,
            np.nan,
        )
    # The drop shown is the one its route tests: the pass rates', or the mean scores'.
    drop = np.where(
        route == SCORES, scores_drop, np.where(np.isfinite(verdicts_drop), verdicts_drop, scores_drop)
    )
    label = f"quality drop vs {look.stable_name}"
    return SLOLook(QUALITY_MAX_DROP, label, max_drop, (failures, scores), missing, reason, drop)


def observe(look: LookInput, slo: QualitySLO, config: SequentialConfig) -> list[SLOLook]:
    looks: list[SLOLook] = []
    if slo.min_score is not None:
        looks.append(_min_score(look, slo.min_score))
    if slo.max_drop_vs_stable is not None:
        looks.append(_max_drop(look, slo.max_drop_vs_stable, config))
    return looks


class Quality:
    field = "quality"
    hard_by_default = False

    def fields(self, slos: SLOs) -> tuple[str, ...]:
        if slos.quality is None:
            return ()
        scores = ("eval_score_sum", "eval_score_count")
        verdicts = ("eval_passed", "eval_failed") if slos.quality.max_drop_vs_stable is not None else ()
        return (*scores, *verdicts)

    def helpful_fields(self, slos: SLOs) -> tuple[str, ...]:
        # The scores' histogram bounds the variance of the mean scores (minScore, and the drop's route
        # through the scores).
        return ("eval_score",) if slos.quality is not None else ()

    def rollback_tests(self, slos: SLOs) -> int:
        if slos.quality is None:
            return 0
        # maxDropVsStable has two (judged failures, mean scores), whichever is chosen.
        return (slos.quality.min_score is not None) + 2 * (slos.quality.max_drop_vs_stable is not None)

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        return [] if slos.quality is None else evaluate_threshold(slos.quality, window, baseline)

    def observe(
        self, look: LookInput, slos: SLOs, pricing: Pricing | None, config: SequentialConfig
    ) -> list[SLOLook]:
        return [] if slos.quality is None else observe(look, slos.quality, config)
