"""difference.py: two versions' mean scores, their drop tested on empirical-Bernstein e-processes.
Tables for the evidence's properties, brute force for the grid's bound, simulations for the error
rates."""

import math

import numpy as np
import pytest

from llmrollout.analysis import confidence, difference
from llmrollout.analysis.difference import Sums


def _sums(values: np.ndarray) -> Sums:
    """One replicate's sums, its squares exact."""
    return Sums.of(np.array([values.sum()]), np.array([(values**2).sum()]), np.array([float(len(values))]))


def _beta(rng: np.random.Generator, mean: float, sd: float, size: int | tuple[int, ...]) -> np.ndarray:
    common = mean * (1 - mean) / sd**2 - 1
    return rng.beta(mean * common, (1 - mean) * common, size)


def test_one_bet_from_sums_is_the_product_over_values() -> None:
    """The sums carry everything: the evidence equals the product over values of each bet's factor."""
    values = np.array([0.2, 0.9, 0.55, 1.0, 0.0, 0.7])
    level = 0.4
    factors = np.exp(
        difference.LAMBDAS * (values[:, None] - level) - difference._PSI * (values[:, None] - level) ** 2
    )
    by_value = math.log(float(np.mean(np.prod(factors, axis=0))))
    assert float(difference.log_e_above(_sums(values), np.array([[level]]))[0, 0]) == pytest.approx(by_value)


@pytest.mark.parametrize("seed", range(6))
def test_evidence_is_monotone_in_the_level(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sums = _sums(_beta(rng, rng.uniform(0.1, 0.9), 0.05 + 0.2 * rng.random(), int(rng.integers(1, 5000))))
    levels = np.linspace(0.0, 1.0, 2001)[None, :]
    assert np.all(np.diff(difference.log_e_above(sums, levels)) <= 1e-9)
    assert np.all(np.diff(difference.log_e_below(sums, levels)) >= -1e-9)


def test_looser_squares_only_lower_the_evidence() -> None:
    rng = np.random.default_rng(3)
    values = _beta(rng, 0.8, 0.1, 400)
    exact, loose = (
        _sums(values),
        Sums.of(np.array([values.sum()]), np.array([values.sum()]), np.array([400.0])),
    )
    level = np.array([[0.75]])
    assert difference.log_e_below(loose, level)[0, 0] < difference.log_e_below(exact, level)[0, 0]


def _scanned_and_bounded(stable: Sums, candidate: Sums, level: float, side: str) -> tuple[float, float]:
    """(the infimum over a scan of 100,001 candidate means, the grid's bound) of the evidence that the
    drop is above `level` (`side` above) or below it."""
    if side == "above":
        means = np.linspace(max(0.0, -level), 1.0, 100_001)
        stable_side, candidate_side = difference.log_e_above, difference.log_e_below
        bounded = difference.log_e_drop_above(stable, candidate, level)
    else:
        means = np.linspace(0.0, min(1.0, 1.0 - level), 100_001)
        stable_side, candidate_side = difference.log_e_below, difference.log_e_above
        bounded = difference.log_e_drop_below(stable, candidate, level)
    scanned = stable_side(stable, np.clip(means + level, 0, 1)[None, :]) + candidate_side(
        candidate, means[None, :]
    )
    return float(scanned.min()), float(bounded[0])


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("side", ["above", "below"])
def test_the_grid_bounds_the_infimum_from_below_and_closely(seed: int, side: str) -> None:
    """Never above the scanned infimum (the test's validity rests on it), and within 0.2 of it where a
    decision could hinge on it (evidence up to 15)."""
    rng = np.random.default_rng(seed)
    stable_mean, candidate_mean = rng.uniform(0.05, 0.95, 2)
    concentration = rng.uniform(1.0, 50.0)

    def scores(mean: float) -> Sums:
        sd = math.sqrt(mean * (1 - mean) / (concentration + 1))
        return _sums(_beta(rng, mean, sd, int(rng.integers(1, 20000))))

    stable, candidate = scores(stable_mean), scores(candidate_mean)
    level = stable_mean - candidate_mean + rng.normal(0.0, 0.02)
    infimum, bound = _scanned_and_bounded(stable, candidate, level, side)
    assert bound <= infimum + 1e-9
    if -1.0 < infimum < 15.0:
        assert bound >= infimum - 0.2


def test_a_drop_no_pair_of_means_reaches_is_refuted_outright() -> None:
    rng = np.random.default_rng(1)
    one = _sums(rng.random(5))
    assert difference.log_e_drop_below(one, one, 1.5)[0] == math.inf


def test_bounds_narrow_around_the_drop_with_data() -> None:
    rng = np.random.default_rng(2)
    widths = []
    for n in (100, 1000, 10000):
        stable, candidate = _sums(_beta(rng, 0.86, 0.1, n)), _sums(_beta(rng, 0.82, 0.1, n))
        lower, upper = difference.drop_bounds(stable, candidate, 0.01, 0.05)
        assert float(lower[0]) < 0.04 < float(upper[0])
        widths.append(float(upper[0] - lower[0]))
    assert widths[0] > widths[1] > widths[2]
    # Each bound is where the evidence crosses its threshold.
    assert difference.log_e_drop_above(stable, candidate, lower)[0] >= math.log(100)
    assert difference.log_e_drop_below(stable, candidate, upper)[0] >= math.log(20)


def _simulate(drop: float, level: float, side: str, sd: float, seed: int) -> float:
    """The share of 400 replicates whose evidence ever reaches 1/0.05 over 60 looks of 50 scores per
    version, stable's mean 0.86 and the candidate's `drop` lower: against "drop at most `level`"
    (`side` above) or "at least `level`" (below)."""
    rng = np.random.default_rng(seed)
    replicates, looks, per_look = 400, 60, 50
    totals = np.zeros((2, 3, replicates))
    reached = np.zeros(replicates, bool)
    for _ in range(looks):
        for version, mean in enumerate((0.86, 0.86 - drop)):
            scores = _beta(rng, mean, sd, (replicates, per_look))
            totals[version] += np.stack(
                [scores.sum(axis=1), (scores**2).sum(axis=1), np.full(replicates, 50.0)]
            )
        stable, candidate = Sums.of(*totals[0]), Sums.of(*totals[1])
        test = difference.log_e_drop_above if side == "above" else difference.log_e_drop_below
        reached |= test(stable, candidate, level) >= math.log(20)
    return float(reached.mean())


@pytest.mark.parametrize("sd", [0.05, 0.3])
def test_a_drop_exactly_at_the_level_is_rarely_shown_above_it(sd: float) -> None:
    """False rollbacks: a drop of exactly the rollback level, at a = 5%, over 60 looks."""
    assert _simulate(0.015, 0.015, "above", sd, seed=11) <= 0.05


@pytest.mark.parametrize("sd", [0.05, 0.3])
def test_a_drop_exactly_at_the_bound_is_rarely_shown_below_it(sd: float) -> None:
    """Misses: a drop of exactly the bound, at b = 5%, over 60 looks."""
    assert _simulate(0.03, 0.03, "below", sd, seed=12) <= 0.05


def _look_of_decision(
    values_sd: float, drop: float, with_squares: bool, level: float, side: str
) -> int | None:
    rng = np.random.default_rng(5)
    stable, candidate = np.zeros(3), np.zeros(3)
    for look in range(400):
        for sums, mean in ((stable, 0.86), (candidate, 0.86 - drop)):
            scores = _beta(rng, mean, values_sd, 50)
            sums += [scores.sum(), (scores**2).sum() if with_squares else scores.sum(), 50.0]
        s, c = Sums.of(*stable[:, None]), Sums.of(*candidate[:, None])
        if with_squares:
            test = difference.log_e_drop_above if side == "above" else difference.log_e_drop_below
            if test(s, c, level)[0] >= math.log(100):
                return look
            continue
        # confidence.py's sequences, each at half the level: what the drop had before.
        if side == "above":
            low = confidence.lower_bounds(s.total, s.count, 0.005) - confidence.upper_bounds(
                c.total, c.count, 0.005
            )
            if low[0] > level:
                return look
        else:
            high = confidence.upper_bounds(s.total, s.count, 0.005) - confidence.lower_bounds(
                c.total, c.count, 0.005
            )
            if high[0] <= level:
                return look
    return None


def test_scores_that_vary_little_decide_far_sooner_than_as_if_zero_or_one() -> None:
    """Judge scores of sd 0.05, 50 a look per version: a drop of 0.05 is shown beyond 0.015 (the
    rollback level of maxDropVsStable 0.03), and no drop is shown within 0.03, in a fraction of the
    looks the worst-case sequences need (at this seed looks 9 and 12, against 178 and 203)."""
    rolled_back = _look_of_decision(0.05, 0.05, True, 0.015, "above")
    rolled_back_before = _look_of_decision(0.05, 0.05, False, 0.015, "above")
    cleared = _look_of_decision(0.05, 0.0, True, 0.03, "below")
    cleared_before = _look_of_decision(0.05, 0.0, False, 0.03, "below")
    assert None not in (rolled_back, rolled_back_before, cleared, cleared_before)
    assert rolled_back is not None and rolled_back_before is not None
    assert cleared is not None and cleared_before is not None
    assert rolled_back * 8 <= rolled_back_before
    assert cleared * 8 <= cleared_before
