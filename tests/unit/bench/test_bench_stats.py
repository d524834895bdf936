"""Wald's bound and the oracle SPRT."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from bench.decisions.model import JUDGED_SHARE, STEPS, scenario
from bench.decisions.policies import (
    FAIL,
    HOLD,
    PASS,
    Look,
    OracleModel,
    OraclePolicy,
    OracleSetPolicy,
    design_point_models,
    oracle_model,
    unsteady_minutes,
)
from bench.decisions.simulate import WindowArrays
from bench.decisions.stats import bernoulli_kl, upper_bound, wald_accept_bound, wald_bound

FINAL = len(STEPS) - 1


@pytest.mark.parametrize(
    ("p0", "p1", "expected"),
    [
        (0.01, 0.02, 677),  # errors 1% -> 2%
        (0.10, 0.15, 217),  # judged failures 10% -> 15% (pass rate 90% -> 85%), per judged answer
        (0.05, 0.131, 54),  # TTFT p95 +30% as exceedance counts 5% -> 13.1%
    ],
)
def test_wald_bound_matches_reference_examples(p0: float, p1: float, expected: int) -> None:
    assert round(wald_bound(0.05, 0.05, bernoulli_kl(p1, p0))) == expected


def test_bernoulli_kl_against_scipy() -> None:
    from scipy.stats import entropy

    assert bernoulli_kl(0.02, 0.01) == pytest.approx(entropy([0.02, 0.98], [0.01, 0.99]))


def test_per_request_information_of_the_judged_sample() -> None:
    model = oracle_model(scenario("pass rate 90% -> 85%"))
    assert model is not None
    assert model.kl_per_request() == pytest.approx(0.99 * JUDGED_SHARE * bernoulli_kl(0.15, 0.10))


def test_upper_bound_is_clopper_pearson() -> None:
    assert upper_bound(0, 2000) == pytest.approx(1 - 0.05 ** (1 / 2000))
    assert upper_bound(20, 2000) > 0.01


def _windows(events: np.ndarray, trials: np.ndarray) -> WindowArrays:
    zeros = np.zeros(len(events))
    return WindowArrays(
        requests=trials,
        errors=events,
        ttft=np.zeros((len(events), 15)),
        ttft_count=trials - events,
        in_tokens=zeros,
        out_tokens=zeros,
        passed=zeros,
        failed=zeros,
        in_hist=np.zeros((len(events), 9)),
        out_hist=np.zeros((len(events), 9)),
    )


def _sprt(p_true: float, replicates: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The oracle at the last step on one request per look: (decision, requests) per replicate."""
    policy = OraclePolicy(OracleModel("errors", (0.01,), (0.05,)))
    policy.start(replicates)
    rng = np.random.default_rng(seed)
    decision = np.zeros(replicates, np.int64)
    used = np.zeros(replicates)
    for step in range(1, 5000):
        index = np.flatnonzero(decision == 0)
        if len(index) == 0:
            break
        errors = (rng.random(len(index)) < p_true).astype(float)
        window = _windows(errors, np.ones(len(index)))
        verdict = policy.look(Look(step, index, np.full(len(index), FINAL), window, window, window, window))
        used[index] += 1
        decision[index[verdict == FAIL]] = 1
        decision[index[verdict == PASS]] = 2
    return decision, used


def test_oracle_sprt_attains_walds_bound_on_a_simple_case() -> None:
    """Per request the SPRT's overshoot is small, so its mean sample number sits just above Wald's
    bound, and its error rates respect a = 1%, b = 5%. The bound is taken at a = 1% (which the
    achieved rate is below): a false alarm rate estimated from 4000 runs is too noisy to plug in."""
    decision, used = _sprt(0.05, 4000, 1)
    miss = float(np.mean(decision == 2))
    null_decision, _ = _sprt(0.01, 4000, 2)
    false_alarm = float(np.mean(null_decision == 1))
    assert false_alarm <= 0.01 + 3 * math.sqrt(0.01 / 4000)
    assert miss <= 0.05 + 3 * math.sqrt(0.05 / 4000)
    bound = wald_bound(0.01, miss, bernoulli_kl(0.05, 0.01))
    mean = float(used.mean())
    assert bound <= mean <= bound * 1.35


def test_oracle_increments_are_binomial_log_likelihood_ratios() -> None:
    policy = OraclePolicy(OracleModel("errors", (0.01,), (0.02,)))
    policy.start(3)
    events, trials = np.array([0.0, 3.0, 10.0]), np.array([100.0, 120.0, 150.0])
    window = _windows(events, trials)
    policy.look(Look(1, np.arange(3), np.zeros(3, np.int64), window, window, window, window))
    expected = binom.logpmf(events, trials, 0.02) - binom.logpmf(events, trials, 0.01)
    assert policy.llr == pytest.approx(expected)


def test_oracle_accept_side_attains_walds_bound_and_its_error_rates() -> None:
    """At the stable rate the SPRT accepts: at least 1 - a of the time, in about Wald's least expected
    number of requests for accepting (KL(P0 || P1) per request)."""
    decision, used = _sprt(0.01, 4000, 3)
    false_alarm = float(np.mean(decision == 1))
    assert false_alarm <= 0.01 + 3 * math.sqrt(0.01 / 4000)
    assert np.all(decision != 0)
    # Wald's approximation at the design's error rates (the achieved ones are only estimates): the
    # mean sample number sits at it, up to the overshoot of the last request.
    bound = wald_accept_bound(0.01, 0.05, bernoulli_kl(0.01, 0.05))
    assert bound * 0.95 <= used.mean() <= bound * 1.35
    # The accept side is the slower one here: KL(P0 || P1) is smaller than KL(P1 || P0).
    assert bernoulli_kl(0.01, 0.05) < bernoulli_kl(0.05, 0.01)


def test_wald_accept_bound_is_the_reject_bound_with_the_roles_swapped() -> None:
    assert wald_accept_bound(0.01, 0.05, 0.02) == pytest.approx(wald_bound(0.05, 0.01, 0.02))
    # Accepting at b = 5% asks for less evidence than rejecting at a = 1%.
    assert wald_accept_bound(0.01, 0.05, 0.02) < wald_bound(0.01, 0.05, 0.02)


def _look(minute: int, level: int, errors: float, requests: float) -> Look:
    window = _windows(np.array([errors]), np.array([requests]))
    return Look(minute, np.arange(1), np.array([level]), window, window, window, window)


def test_oracle_passes_early_steps_unless_rejected_and_the_last_only_once_accepted() -> None:
    policy = OraclePolicy(OracleModel("errors", (0.01,), (0.02,)))
    policy.start(1)
    assert policy.look(_look(1, 0, 1.0, 100.0)).tolist() == [PASS]  # early step, nothing rejected
    assert policy.look(_look(2, FINAL, 1.0, 100.0)).tolist() == [HOLD]  # last step, not yet accepted
    assert policy.look(_look(3, FINAL, 0.0, 3000.0)).tolist() == [PASS]  # accepted
    rejecting = OraclePolicy(OracleModel("errors", (0.01,), (0.02,)))
    rejecting.start(1)
    assert rejecting.look(_look(1, 0, 30.0, 300.0)).tolist() == [FAIL]


def test_oracle_skips_windows_it_knows_say_nothing() -> None:
    # The windows with a warm-up or an outage in them, and the next, which lagged reads reach into.
    assert unsteady_minutes(scenario("healthy: warm-up spike")) == frozenset({1, 2, 3})
    assert unsteady_minutes(scenario("healthy: outage on both")) == frozenset({3, 4, 5})
    assert unsteady_minutes(scenario("errors 1% -> 2%")) == frozenset()
    policy = OraclePolicy(OracleModel("errors", (0.01,), (0.02,)), skip=frozenset({1}))
    policy.start(1)
    assert policy.look(_look(1, FINAL, 30.0, 100.0)).tolist() == [HOLD]
    assert policy.llr.tolist() == [0.0]


def test_healthy_oracle_needs_every_family_to_accept() -> None:
    models = design_point_models()
    assert [m.family for m in models] == ["errors", "quality", "ttft", "tokens"]
    both = OracleSetPolicy((OracleModel("errors", (0.01,), (0.02,)), OracleModel("errors", (0.01,), (0.05,))))
    both.start(1)
    assert [part.alpha for part in both.parts] == [0.005, 0.005]
    # 0 errors in 150 requests accepts 1% against 5% but not yet against 2%.
    assert both.look(_look(1, FINAL, 0.0, 150.0)).tolist() == [HOLD]
    assert [part.accepted[0] for part in both.parts] == [False, True]
    assert both.look(_look(2, FINAL, 0.0, 2000.0)).tolist() == [PASS]
