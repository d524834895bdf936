"""The golden-set gate: candidate and stable answer the same items; did the candidate get worse?

Pure: per-item scores in, a pass/fail decision with its numbers out. No I/O.

Each item is scored for both versions, so the comparison is paired: what varies between items (some
questions are hard for every model) cancels in the per-item difference, which is what makes a 50-100
item golden set enough to see a real drop. The items are treated as a sample of the questions users
ask (independent, identically distributed pairs); the chance of failing a candidate that is no worse
than `maxDropVsStable` is at most `falseRollbackRate`:

- pass/fail scores with no tolerance: the exact one-sided McNemar test (the discordant pairs are
  Binomial(n, 1/2) when neither version is better);
- pass/fail scores with a tolerated drop: an exact unconditional test of "the drop is at most the
  tolerance": each pair's difference is +1, 0 or -1, so (only stable passes) - (only the candidate
  passes) has a distribution fixed by the two discordant probabilities; the p-value is its upper tail
  maximised over every pair of them whose difference is the tolerance (larger drops only raise it);
- fractional judge scores: a betting lower confidence bound on the
  mean per-item drop (Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting",
  JRSS-B 2023, arXiv:2010.09686): a wealth process that bets on "the drop exceeds the tolerance" and is a
  nonnegative supermartingale when it does not, so by Ville's inequality it reaches 1/falseRollbackRate
  with at most that chance, at any item count, including a run cut short by its budget.

`minScore` is a fixed bar on the candidate's mean score, like a CI threshold: the golden set is the
user's own, and a candidate under the bar fails whatever stable scores.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np

# Truncating bets at this share of what the bound allows keeps wealth positive on any outcome (WSR's c).
_BET_CAP = 0.75
_NUISANCE_GRID = 64
_BISECTION_STEPS = 50
_SHUFFLE_SEED = 20240229


def mcnemar_exact_p(worse: int, better: int) -> float:
    """One-sided exact McNemar p-value: the chance of at least `worse` pairs where only the baseline
    passes, out of the `worse + better` discordant pairs, if each is equally likely either way."""
    worse, better = int(worse), int(better)  # numpy integers would overflow 2**n
    n = worse + better
    if n == 0 or worse == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(worse, n + 1))
    return float(Fraction(tail, 2**n))


def _difference_pmf(n: int, worse: float, better: float) -> np.ndarray:
    """P(T = t) for t = -n..n, T the sum of n pairs each +1 (worse), -1 (better) or 0."""
    size = 2 * n + 1
    # Circular convolution of length 2n+1 equals the linear one: T cannot wrap around.
    step = np.zeros(size)
    step[0], step[1], step[-1] = 1.0 - worse - better, worse, better
    pmf = np.fft.irfft(np.fft.rfft(step) ** n, size)
    centred = np.roll(pmf, n)  # index n is T = 0
    return np.clip(centred, 0.0, None)


def _binomial_cdf(k: int, n: int, q: float) -> float:
    """P(X <= k) for X ~ Binomial(n, q)."""
    if k < 0:
        return 0.0
    if k >= n or q <= 0.0:
        return 1.0
    if q >= 1.0:
        return 0.0
    ks = np.arange(k + 1)
    log_pmf = (
        np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in ks])
        + ks * math.log(q)
        + (n - ks) * math.log1p(-q)
    )
    return float(min(1.0, np.exp(log_pmf).sum()))


def _clopper_pearson(k: int, n: int, miscoverage: float) -> tuple[float, float]:
    """Exact two-sided (1 - miscoverage) interval for a binomial probability, by bisection."""

    def solve(reject_below: bool) -> float:
        low, high = 0.0, 1.0
        for _ in range(_BISECTION_STEPS):
            middle = (low + high) / 2
            if reject_below:  # lower end: P(X >= k) too small below it
                tail = 1.0 - _binomial_cdf(k - 1, n, middle)
                low, high = (middle, high) if tail < miscoverage / 2 else (low, middle)
            else:  # upper end: P(X <= k) too small above it
                tail = _binomial_cdf(k, n, middle)
                low, high = (low, middle) if tail < miscoverage / 2 else (middle, high)
        return low if reject_below else high

    return (0.0 if k == 0 else solve(True)), (1.0 if k == n else solve(False))


def exact_drop_p(worse: int, better: int, n: int, tolerance: float, alpha: float = 0.01) -> float:
    """One-sided p-value of "the pass-rate drop is at most `tolerance`" from n pass/fail pairs, `worse`
    of which only stable passed and `better` of which only the candidate passed.

    The tail of T = worse - better depends on the nuisance P(only the candidate passes). Maximising over
    all of it would let implausible values (half the pairs discordant when a tenth are) decide, so the
    maximum is over its exact confidence interval at level 1 - alpha/10, with alpha/10 added back
    (Berger & Boos, JASA 1994): still a valid p-value, and a test of level alpha as intended.
    """
    if n == 0:
        return 1.0
    observed = worse - better
    if observed <= tolerance * n:
        return 1.0  # no evidence beyond the tolerance; also spares the work
    slack = alpha / 10
    low, high = _clopper_pearson(better, n, slack)
    high = min(high, (1.0 - tolerance) / 2.0)
    if low > high:
        return slack  # no nuisance value is both plausible and on the boundary
    # On the boundary drop = tolerance (larger drops only raise the tail), both interval ends included.
    worst_tail = 0.0
    for better_p in np.linspace(low, high, _NUISANCE_GRID):
        pmf = _difference_pmf(n, float(better_p) + tolerance, float(better_p))
        worst_tail = max(worst_tail, float(pmf[observed + n :].sum()))
    return min(1.0, worst_tail + slack)


def _bets(values: np.ndarray, alpha: float) -> np.ndarray:
    """Predictable bet sizes before truncation: WSR's plug-in for a fixed sample size n, from the
    running mean and variance of the items seen so far (item i never sees itself)."""
    n = len(values)
    seen = np.arange(1, n + 1)
    means = (0.5 + np.cumsum(values)) / (seen + 1)
    squares = np.cumsum((values - means) ** 2)
    variance_before = (0.25 + np.concatenate(([0.0], squares[:-1]))) / seen
    bets: np.ndarray = np.sqrt(2 * math.log(1 / alpha) / (n * variance_before))
    return bets


def _log_wealth_peak(values: np.ndarray, bets: np.ndarray, mean: float) -> float:
    """log max over items of the wealth from betting that the mean of `values` exceeds `mean`."""
    capped = np.minimum(bets, _BET_CAP / mean) if mean > 0 else bets
    log_wealth = np.cumsum(np.log1p(capped * (values - mean)))
    return float(log_wealth.max()) if len(log_wealth) else 0.0


def _shuffled(values: Sequence[float]) -> np.ndarray:
    # Golden sets are often written easy-to-hard; a fixed seeded shuffle keeps the order from steering
    # the bets, and keeps the decision reproducible (a restarted operator decides the same).
    order = list(range(len(values)))
    random.Random(_SHUFFLE_SEED).shuffle(order)
    return np.asarray([values[i] for i in order], dtype=float)


def drop_lower_bound(drops: Sequence[float], alpha: float) -> float:
    """A (1 - alpha) lower confidence bound on the mean of per-item drops in [-1, 1]."""
    if not drops:
        return -1.0
    values = (_shuffled(drops) + 1.0) / 2.0  # into [0, 1]
    bets = _bets(values, alpha)
    threshold = math.log(1 / alpha)
    rejected, accepted = 0.0, min(1.0, float(values.mean()) + 1e-12)
    if _log_wealth_peak(values, bets, rejected + 1e-12) < threshold:
        return -1.0
    # Wealth only falls as the tested mean rises, so the rejected means form an interval from 0.
    for _ in range(_BISECTION_STEPS):
        middle = (rejected + accepted) / 2
        if _log_wealth_peak(values, bets, middle) >= threshold:
            rejected = middle
        else:
            accepted = middle
    return 2.0 * rejected - 1.0


def drop_exceeds(drops: Sequence[float], tolerance: float, alpha: float) -> bool:
    """Whether the betting test rejects "the mean drop is at most `tolerance`" at level alpha."""
    if not drops:
        return False
    values = (_shuffled(drops) + 1.0) / 2.0
    return _log_wealth_peak(values, _bets(values, alpha), (1.0 + tolerance) / 2.0) >= math.log(1 / alpha)


@dataclass(frozen=True)
class PairedItem:
    item_id: str
    candidate: float  # in [0, 1]; an unscored answer (error, unparseable judge) is 0
    baseline: float
    # The judge or embeddings endpoint failed on this pair: it says nothing about either version.
    scorer_failed: bool = False
    # Stable gave no answer here: nothing to compare the candidate with on this item.
    baseline_failed: bool = False


Method = Literal["mcnemar", "exact", "betting", "none"]


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    n: int
    candidate_score: float
    baseline_score: float | None
    drop: float | None
    drop_lower_bound: float | None
    p_value: float | None
    method: Method
    failures: tuple[str, ...]
    worst_items: tuple[str, ...]
    # Too little was scored to judge the candidate (scorer outage, nothing run): never a pass, but
    # not evidence against the candidate either; the caller may retry, hold or roll back.
    inconclusive: bool = False

    @property
    def reason(self) -> str:
        if self.inconclusive:
            return "GoldenSetInconclusive"
        return "GoldenSetPassed" if self.passed else "GoldenSetFailed"

    def to_status(self) -> dict[str, object]:
        """camelCase for status; worst items by id only, never their text (status is not for content)."""
        return {
            "passed": self.passed,
            "reason": self.reason,
            "score": round(self.candidate_score, 4),
            "stableScore": None if self.baseline_score is None else round(self.baseline_score, 4),
            "drop": None if self.drop is None else round(self.drop, 4),
            "dropLowerBound": None if self.drop_lower_bound is None else round(self.drop_lower_bound, 4),
            "pValue": self.p_value,
            "method": self.method,
            "n": self.n,
            "worstItems": list(self.worst_items),
            "message": self.message,
        }

    @property
    def message(self) -> str:
        parts = [f"golden set score {self.candidate_score:.3f}"]
        if self.baseline_score is not None and self.drop is not None:
            parts.append(f"stable {self.baseline_score:.3f}, drop {self.drop:+.3f}")
            if self.drop_lower_bound is not None:
                parts.append(f"drop lower bound {self.drop_lower_bound:+.3f}")
            if self.p_value is not None:
                parts.append(f"{'McNemar ' if self.method == 'mcnemar' else ''}p={self.p_value:.3g}")
        parts.append(f"n={self.n}")
        text = ", ".join(parts)
        if self.failures:
            text += ": " + "; ".join(self.failures)
            if self.worst_items:
                text += f" (worst items: {', '.join(self.worst_items)})"
        return text


def _binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def golden_set_gate(
    items: Sequence[PairedItem],
    *,
    min_score: float | None,
    max_drop_vs_stable: float | None,
    false_rollback_rate: float,
    worst: int = 5,
    max_scorer_failure_share: float = 0.1,
) -> GateDecision:
    """Pass or fail a candidate on its golden-set results paired with stable's.

    Fails when the candidate's mean score is under `min_score`, or when the paired test finds its
    mean score more than `max_drop_vs_stable` below stable's at level `false_rollback_rate`.
    Inconclusive (and not passed) when there are no items, when the scorer failed on more than
    `max_scorer_failure_share` of the pairs, or, for the comparison, when stable did not answer that
    many: a gate that saw nothing must not let a candidate through, a judge outage must not read as
    a worse candidate, and a stable outage must not read as a better one.
    """
    n = len(items)
    if n == 0:
        return GateDecision(
            False, 0, 0.0, None, None, None, None, "none", ("no items were scored",), (), inconclusive=True
        )
    broken = sum(i.scorer_failed for i in items)
    unanswered = sum(i.baseline_failed for i in items) if max_drop_vs_stable is not None else 0
    limit = max_scorer_failure_share * n
    if broken > limit or unanswered > limit:
        failure = (
            f"the scorer failed on {broken} of {n} pairs; check the judge or embeddings endpoint"
            if broken > limit
            else f"stable did not answer {unanswered} of {n} items; nothing to compare with"
        )
        mean = sum(i.candidate for i in items) / n
        return GateDecision(False, n, mean, None, None, None, None, "none", (failure,), (), inconclusive=True)
    candidate = sum(i.candidate for i in items) / n
    failures: list[str] = []
    if min_score is not None and candidate < min_score:
        failures.append(f"score {candidate:.3f} < minScore {min_score:.3f}")
    baseline = drop = bound = p_value = None
    method: Method = "none"
    if max_drop_vs_stable is not None:
        baseline = sum(i.baseline for i in items) / n
        drop = baseline - candidate
        drops = [i.baseline - i.candidate for i in items]
        scores = [i.candidate for i in items] + [i.baseline for i in items]
        if _binary(scores):
            worse, better = int(sum(d > 0 for d in drops)), int(sum(d < 0 for d in drops))
            if max_drop_vs_stable == 0:
                method, p_value = "mcnemar", mcnemar_exact_p(worse, better)
            else:
                method = "exact"
                p_value = exact_drop_p(worse, better, n, max_drop_vs_stable, false_rollback_rate)
            significant = p_value <= false_rollback_rate
        else:
            method = "betting"
            significant = drop_exceeds(drops, max_drop_vs_stable, false_rollback_rate)
            bound = drop_lower_bound(drops, false_rollback_rate)
        if significant:
            failures.append(
                f"drop {drop:.3f} vs stable exceeds maxDropVsStable {max_drop_vs_stable:.3f}"
                f" beyond chance (falseRollbackRate {false_rollback_rate:g})"
            )
    ranked = sorted(items, key=lambda i: (i.candidate - i.baseline, i.candidate, i.item_id))
    worst_items = tuple(
        i.item_id for i in ranked if i.candidate < i.baseline or (i.candidate < 1.0 and baseline is None)
    )[:worst]
    return GateDecision(
        not failures, n, candidate, baseline, drop, bound, p_value, method, tuple(failures), worst_items
    )


def threshold_gate(
    item_ids: Sequence[str],
    scores: Sequence[float],
    *,
    min_score: float,
    scorer_failed: Sequence[bool] | None = None,
    worst: int = 5,
) -> GateDecision:
    """One endpoint, no baseline: its mean score against a fixed bar (what `llmrollout eval` does in CI)."""
    failed = scorer_failed if scorer_failed is not None else [False] * len(scores)
    return golden_set_gate(
        [PairedItem(i, s, s, f) for i, s, f in zip(item_ids, scores, failed, strict=True)],
        min_score=min_score,
        max_drop_vs_stable=None,
        false_rollback_rate=0.5,
        worst=worst,
    )
