import inspect
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from llmrollout.analysis.observations import Histogram, VariantWindow, Window
from llmrollout.analysis.sequential import (
    SequentialConfig,
    SequentialEvaluation,
    SequentialState,
    evaluate_sequential,
    load_state,
    rollback_test_count,
)
from llmrollout.analysis.verdict import Verdict
from llmrollout.api.spec import Pricing, SLOs

INF = math.inf
EDGES = (0.05, 0.1, 0.25, 0.5, 0.8, 1.0, 2.5, 5.0, 10.0)
PRICING = Pricing(input_per_million_tokens=1.0, output_per_million_tokens=2.0)
INPUT_TOKENS = 500
OUTPUT_TOKENS = 200
# 500 input tokens at $1/M and 200 output tokens at $2/M
COST_PER_REQUEST = (INPUT_TOKENS * 1.0 + OUTPUT_TOKENS * 2.0) / 1e6
QUERY = "x{v='{{variant}}'}"
STEP_WEIGHTS = (5, 25, 50, 100)
LOOKS_PER_STEP = 3
REQUESTS_PER_LOOK = 1000.0
# Most tests check the rules after the warm-up; the warm-up has tests of its own.
NO_WARMUP = SequentialConfig(warmup_seconds=0.0)


def is_final_step(step: int, steps: tuple[int, ...] = STEP_WEIGHTS) -> bool:
    """What the state machine passes as final_step: passing this step promotes."""
    return step + 1 >= len(steps) or steps[step + 1] >= 100


def slos(**fields: Any) -> SLOs:
    return SLOs.model_validate(fields)


EVERY_SLO = slos(
    quality={"minScore": 0.3, "maxDropVsStable": 0.1},
    ttft={"p95": "800ms"},
    latency={"p95": "5s"},
    errorRate={"max": 0.02},
    costPerRequest={"maxUSD": 2 * COST_PER_REQUEST},
    custom=[{"name": "refusals", "query": QUERY, "max": 0.05}],
)


def exponential_histogram(requests: float, scale: float) -> Histogram:
    """Expected cumulative counts of exponentially distributed durations (increase() is fractional)."""
    buckets = tuple((edge, requests * (1 - math.exp(-edge / scale))) for edge in EDGES)
    return Histogram((*buckets, (INF, requests)))


def variant(
    name: str,
    requests: float,
    *,
    error_rate: float = 0.01,
    ttft_scale: float = 0.1,
    latency_scale: float = 0.5,
    score: float = 0.9,
    failed_share: float = 0.1,
    output_tokens: float = OUTPUT_TOKENS,
    refusals: float | None = 0.01,
) -> VariantWindow:
    judged = 0.2 * requests
    return VariantWindow(
        variant=name,
        requests=requests,
        errors=error_rate * requests,
        ttft=exponential_histogram(requests, ttft_scale),
        latency=exponential_histogram(requests, latency_scale),
        eval_score_sum=score * judged,
        eval_score_count=judged,
        eval_passed=(1 - failed_share) * judged,
        eval_failed=failed_share * judged,
        input_tokens=INPUT_TOKENS * requests,
        output_tokens=output_tokens * requests,
        custom={"refusals": refusals},
    )


def rollout(
    spec: SLOs,
    candidate_window: Callable[[float], VariantWindow],
    *,
    stable_window: Callable[[float], VariantWindow] | None = None,
    min_requests: int = 100,
    false_rollback_rate: float = 0.01,
    pricing: Pricing | None = PRICING,
    through_status: bool = True,
    config: SequentialConfig = NO_WARMUP,
    final_steps: bool = False,
) -> Iterator[SequentialEvaluation]:
    """Looks through every step, LOOKS_PER_STEP each, carrying the state as status would; with
    `final_steps`, final_step is passed as the state machine does, else every step needs the proof."""
    state: SequentialState | None = None
    make_stable = stable_window or (lambda requests: variant("v1", requests))
    for look in range(len(STEP_WEIGHTS) * LOOKS_PER_STEP):
        step = look // LOOKS_PER_STEP
        weight = STEP_WEIGHTS[step]
        candidate_requests = REQUESTS_PER_LOOK * weight / 100
        window = Window(
            start=60.0 * look,
            end=60.0 * (look + 1),
            variants={
                "v2": candidate_window(candidate_requests),
                "v1": make_stable(REQUESTS_PER_LOOK - candidate_requests),
            },
        )
        evaluation = evaluate_sequential(
            spec,
            window,
            candidate="v2",
            stable="v1",
            state=state,
            false_rollback_rate=false_rollback_rate,
            min_requests=min_requests,
            step=step,
            candidate_weight=weight,
            pricing=pricing,
            config=config,
            final_step=is_final_step(step) if final_steps else True,
        )
        state = (
            load_state(json.loads(json.dumps(evaluation.state.to_status())))
            if through_status
            else evaluation.state
        )
        yield evaluation


def first_verdict(
    evaluations: Iterator[SequentialEvaluation], verdict: Verdict
) -> tuple[int, SequentialEvaluation]:
    for look, evaluation in enumerate(evaluations):
        if evaluation.verdict is verdict:
            return look, evaluation
    raise AssertionError(f"never {verdict.label}")


def healthy(requests: float) -> VariantWindow:
    return variant("v2", requests)


def test_a_healthy_candidate_passes_and_never_fails() -> None:
    evaluations = list(rollout(EVERY_SLO, healthy))
    assert all(evaluation.verdict is not Verdict.FAIL for evaluation in evaluations)
    look, passed = first_verdict(iter(evaluations), Verdict.PASS)
    assert [result.verdict for result in passed.results] == [Verdict.PASS] * len(passed.results)
    assert look < len(evaluations) - 1
    assert evaluations[-1].verdict is Verdict.PASS


# (the SLO it breaks, the candidate, words in the message, other SLOs the same change may break)
REGRESSIONS = [
    ("errorRate", lambda n: variant("v2", n, error_rate=0.05), "errorRate"),
    ("ttft.p95", lambda n: variant("v2", n, ttft_scale=0.5), "ttft p95"),
    ("latency.p95", lambda n: variant("v2", n, latency_scale=3.0), "latency p95"),
    ("quality.minScore", lambda n: variant("v2", n, score=0.1), "quality mean", "quality.maxDropVsStable"),
    ("quality.maxDropVsStable", lambda n: variant("v2", n, score=0.5), "quality drop"),
    ("quality.maxDropVsStable", lambda n: variant("v2", n, failed_share=0.5), "eval failures"),
    ("costPerRequest", lambda n: variant("v2", n, output_tokens=10 * OUTPUT_TOKENS), "costPerRequest"),
    ("custom.refusals", lambda n: variant("v2", n, refusals=0.2), "custom.refusals"),
]


@pytest.mark.parametrize("regression", REGRESSIONS, ids=[r[2] for r in REGRESSIONS])
def test_each_regression_rolls_back_naming_its_slo(regression: tuple[Any, ...]) -> None:
    slo, make_candidate, words, *also_broken = regression
    evaluations = list(rollout(EVERY_SLO, make_candidate))
    breaks_it = [any(r.slo == slo and r.verdict is Verdict.FAIL for r in e.results) for e in evaluations]
    look = breaks_it.index(True)
    failed = evaluations[look]
    assert failed.verdict is Verdict.FAIL
    failing = {result.slo: result for result in failed.results if result.verdict is Verdict.FAIL}
    assert set(failing) <= {slo, *also_broken}
    assert words in failing[slo].message
    assert failed.reason in [result.message for result in failing.values()]
    assert look < 2 * LOOKS_PER_STEP


def test_a_ttft_shift_under_the_slo_rolls_back_at_stables_p95_edge() -> None:
    # Stable's p95 is 0.30 s (nearest edge 0.25 s); the candidate is 1.5x slower everywhere, its p95
    # of 0.45 s still under the 800 ms SLO. Above 0.8 s both versions show almost nothing.
    spec = slos(ttft={"p95": "800ms"})
    evaluations = list(rollout(spec, lambda n: variant("v2", n, ttft_scale=0.15)))
    look, failed = first_verdict(iter(evaluations), Verdict.FAIL)
    assert "ttft p95 on v2 worse than v1 beyond 10%: share above v1's p95 edge 0.25s" in failed.reason
    slo_edge_test = failed.state.ratio_tests["ttft.p95@0.8"]
    # Each edge's test needs e >= 2 / 0.01: they share the SLO's budget.
    assert "e=" in failed.reason and f">= {2 / 0.01:.3g}" in failed.reason
    assert slo_edge_test.log_e_value() < math.log(2 / 0.01)
    assert look < 2 * LOOKS_PER_STEP


@pytest.mark.parametrize(
    ("bound", "stable_requests", "tests"),
    [
        ("800ms", 1000.0, {"ttft.p95@0.8", "ttft.p95.stableP95@0.25"}),
        # Stable's p95 edge would be the SLO's own: one test.
        ("250ms", 1000.0, {"ttft.p95@0.25"}),
        # Too few stable requests to read its p95 from.
        ("800ms", 19.0, {"ttft.p95@0.8"}),
    ],
)
def test_stables_p95_edge_needs_requests_and_room_below_the_slo(
    bound: str, stable_requests: float, tests: set[str]
) -> None:
    evaluation = look_at(slos(ttft={"p95": bound}), variant("v2", 100.0), variant("v1", stable_requests))
    assert set(evaluation.state.ratio_tests) == tests


def test_stables_p95_edge_is_chosen_once() -> None:
    # Stable's p95 moves from 0.30 s to 0.60 s after the first look; the test keeps its edge.
    looks = iter(range(1000))

    def stable(requests: float) -> VariantWindow:
        return variant("v1", requests, ttft_scale=0.1 if next(looks) == 0 else 0.2)

    evaluations = list(rollout(slos(ttft={"p95": "800ms"}), healthy, stable_window=stable))
    assert {key for e in evaluations for key in e.state.ratio_tests} == {
        "ttft.p95@0.8",
        "ttft.p95.stableP95@0.25",
    }
    counted = evaluations[-1].state.ratio_tests["ttft.p95.stableP95@0.25"].candidate_exposure
    assert counted == sum(REQUESTS_PER_LOOK * weight / 100 for weight in STEP_WEIGHTS) * LOOKS_PER_STEP


def test_a_regression_that_hits_both_versions_is_not_the_candidates_fault() -> None:
    def outage(name: str) -> Callable[[float], VariantWindow]:
        return lambda requests: variant(name, requests, error_rate=0.3, ttft_scale=0.6)

    evaluations = list(rollout(EVERY_SLO, outage("v2"), stable_window=outage("v1")))
    assert all(evaluation.verdict is Verdict.INCONCLUSIVE for evaluation in evaluations)


@pytest.mark.parametrize(
    ("change", "slo", "reason"),
    [
        ({"errors": None}, "errorRate", "series missing"),
        ({"errors": math.nan}, "errorRate", "NaN"),
        ({"ttft": None}, "ttft.p95", "series missing"),
        ({"latency": Histogram(((1.0, math.nan), (INF, 3.0)))}, "latency.p95", "NaN"),
        ({"ttft": Histogram(((1.0, 3.0), (2.0, 3.0)))}, "ttft.p95", "+Inf"),
        ({"eval_score_sum": None}, "quality.minScore", "series missing"),
        ({"eval_score_count": math.nan}, "quality.minScore", "NaN"),
        ({"eval_score_count": math.nan}, "quality.maxDropVsStable", "NaN"),
        ({"output_tokens": None}, "costPerRequest", "series missing"),
        ({"custom": {}}, "custom.refusals", "series missing"),
    ],
)
def test_missing_or_nan_data_holds_even_with_enough_evidence(
    change: dict[str, Any], slo: str, reason: str
) -> None:
    evaluations = list(rollout(EVERY_SLO, healthy))
    assert evaluations[-1].verdict is Verdict.PASS
    window = Window(
        start=1e6,
        end=1e6 + 60,
        variants={"v2": replace(variant("v2", 500.0), **change), "v1": variant("v1", 500.0)},
    )
    evaluation = evaluate_sequential(
        EVERY_SLO,
        window,
        candidate="v2",
        stable="v1",
        state=evaluations[-1].state,
        false_rollback_rate=0.01,
        min_requests=100,
        step=3,
        candidate_weight=50,
        pricing=PRICING,
    )
    assert evaluation.verdict is Verdict.INCONCLUSIVE
    result = next(r for r in evaluation.results if r.slo == slo)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert reason in result.message
    # The candidate's eval scores feed both quality SLOs; every other SLO is untouched.
    touched = {"quality.minScore", "quality.maxDropVsStable"} if slo.startswith("quality") else {slo}
    assert all(r.verdict is Verdict.PASS for r in evaluation.results if r.slo not in touched)


def test_stable_missing_holds_while_it_has_traffic_but_not_at_full_weight() -> None:
    state = list(rollout(EVERY_SLO, healthy))[-1].state
    for weight, expected in ((50, Verdict.INCONCLUSIVE), (100, Verdict.PASS)):
        window = Window(start=1e6, end=1e6 + 60, variants={"v2": variant("v2", 500.0)})
        evaluation = evaluate_sequential(
            EVERY_SLO,
            window,
            candidate="v2",
            stable="v1",
            state=state,
            false_rollback_rate=0.01,
            min_requests=100,
            step=3,
            candidate_weight=weight,
            pricing=PRICING,
        )
        assert evaluation.verdict is expected, evaluation.reason


def test_no_requests_at_all_is_inconclusive_never_pass() -> None:
    evaluations = list(rollout(EVERY_SLO, lambda n: variant("v2", 0.0), min_requests=0))
    assert all(evaluation.verdict is Verdict.INCONCLUSIVE for evaluation in evaluations)
    messages = " ".join(result.message for result in evaluations[-1].results)
    assert "no requests" in messages
    assert "no eval scores" in messages


def test_no_pricing_holds_the_cost_slo() -> None:
    evaluations = list(rollout(slos(costPerRequest={"maxUSD": 1.0}), healthy, pricing=None))
    assert all(evaluation.verdict is Verdict.INCONCLUSIVE for evaluation in evaluations)
    assert "no pricing for v2" in evaluations[-1].reason


def test_zero_cost_budget() -> None:
    free = Pricing()
    spec = slos(costPerRequest={"maxUSD": 0.0})
    assert list(rollout(spec, healthy, pricing=free))[-1].verdict is Verdict.PASS
    assert next(iter(rollout(spec, healthy, pricing=PRICING))).verdict is Verdict.FAIL


def test_min_requests_gates_each_step() -> None:
    # 5% of 1000 is 50 candidate requests a look: the first step needs two looks for 100.
    evaluations = list(rollout(slos(errorRate={"max": 0.5}), healthy, min_requests=100))
    assert [e.verdict for e in evaluations[:3]] == [Verdict.INCONCLUSIVE, Verdict.PASS, Verdict.PASS]
    assert "waiting for minRequests 100 in step 0: v2 50" in evaluations[0].reason
    assert evaluations[3].state.step_requests["candidate"] == 250.0


def test_state_survives_a_restart_unchanged() -> None:
    in_memory = list(rollout(EVERY_SLO, healthy, through_status=False))
    restarted = list(rollout(EVERY_SLO, healthy, through_status=True))
    assert [e.results for e in restarted] == [e.results for e in in_memory]
    assert [e.verdict for e in restarted] == [e.verdict for e in in_memory]


def test_a_window_counted_twice_adds_nothing() -> None:
    window = Window(start=0.0, end=60.0, variants={"v2": variant("v2", 100.0), "v1": variant("v1", 900.0)})
    arguments: dict[str, Any] = {
        "candidate": "v2",
        "stable": "v1",
        "false_rollback_rate": 0.01,
        "min_requests": 100,
        "step": 0,
        "candidate_weight": 10,
        "pricing": PRICING,
    }
    once = evaluate_sequential(EVERY_SLO, window, state=None, **arguments)
    twice = evaluate_sequential(EVERY_SLO, window, state=once.state, **arguments)
    assert twice.state == once.state
    assert "already counted" in twice.reason


def test_a_new_candidate_starts_afresh() -> None:
    state = list(rollout(EVERY_SLO, lambda n: variant("v2", n, error_rate=0.2)))[-1].state
    window = Window(
        start=1e6, end=1e6 + 60, variants={"v3": variant("v3", 100.0), "v1": variant("v1", 900.0)}
    )
    evaluation = evaluate_sequential(
        EVERY_SLO,
        window,
        candidate="v3",
        stable="v1",
        state=state,
        false_rollback_rate=0.01,
        min_requests=100,
        step=0,
        candidate_weight=10,
        pricing=PRICING,
    )
    assert evaluation.state.candidate == "v3"
    assert evaluation.state.looks == 1
    assert evaluation.verdict is not Verdict.FAIL


def test_a_rollback_verdict_sticks_after_healthy_data() -> None:
    regressed = True

    def candidate(requests: float) -> VariantWindow:
        return variant("v2", requests, error_rate=0.2 if regressed else 0.0)

    evaluations = rollout(slos(errorRate={"max": 0.5}), candidate)
    _, failed = first_verdict(evaluations, Verdict.FAIL)
    regressed = False
    later = list(evaluations)
    assert later
    assert all(e.verdict is Verdict.FAIL and e.reason.startswith("errorRate on v2 worse") for e in later)
    # Once the fresh evidence no longer crosses, the message is the one that made the decision.
    assert later[-1].reason == failed.reason


def test_false_rollback_rate_is_split_across_the_rollback_tests() -> None:
    # errorRate, ttft, latency, minScore, and two for maxDropVsStable, cost; custom is not a test.
    assert rollback_test_count(EVERY_SLO) == 7
    assert rollback_test_count(slos()) == 0
    evaluation = next(iter(rollout(slos(errorRate={"max": 0.02}, ttft={"p95": "1s"}), healthy)))
    ttft, errors = evaluation.results
    # 0.01 split over two SLOs: errorRate rolls back at e >= 1 / 0.005 ...
    assert errors.message.count(f"of {1 / (0.01 / 2):.3g} to roll back") == 1
    # ... and ttft's two edge tests (its SLO's edge, stable's p95 edge) at e >= 2 / 0.005 each.
    assert ttft.message.count(f"of {2 / (0.01 / 2):.3g} to roll back") == 2


def test_custom_slo_rolls_back_after_consecutive_breaches() -> None:
    breaches = iter([0.2, 0.01, 0.2, 0.2, 0.01])
    evaluations = list(
        rollout(
            slos(custom=[{"name": "refusals", "query": QUERY, "max": 0.05}]),
            lambda n: variant("v2", n, refusals=next(breaches, 0.01)),
        )
    )
    # breach, recovery (the count restarts), breach, breach
    assert [e.verdict for e in evaluations[:4]] == [
        Verdict.INCONCLUSIVE,
        Verdict.PASS,
        Verdict.INCONCLUSIVE,
        Verdict.FAIL,
    ]
    assert "breach 1 of 2" in evaluations[0].reason
    assert SequentialConfig().custom_breaches_to_fail == 2


def test_no_slos_never_promote() -> None:
    assert all(e.verdict is Verdict.INCONCLUSIVE for e in rollout(slos(), healthy))


@pytest.mark.parametrize(
    "data", [None, {}, {"version": 99}, {"version": 1, "candidate": "v2"}, {"version": "x"}]
)
def test_unreadable_state_starts_afresh(data: dict[str, Any] | None) -> None:
    assert load_state(data) is None


def test_every_status_is_json() -> None:
    for evaluation in rollout(EVERY_SLO, lambda n: variant("v2", n, error_rate=0.05)):
        json.dumps(evaluation.state.to_status(), allow_nan=False)
        for result in evaluation.results:
            json.dumps(result.to_status(), allow_nan=False)


# --- the false-rollback guarantee, by simulation ---------------------------------------------------


def simulated_variant(rng: np.random.Generator, name: str, requests: int, error_rate: float) -> VariantWindow:
    """Request-level draws aggregated the way Prometheus counters and buckets would be."""
    ttft = rng.exponential(0.1, requests)
    latency = rng.exponential(0.5, requests)
    judged = int(rng.binomial(requests, 0.2))
    scores = rng.beta(9.0, 1.0, judged)
    failed = float((scores < 0.7).sum())
    output = rng.poisson(OUTPUT_TOKENS, requests)

    def histogram(values: np.ndarray) -> Histogram:
        cumulative = np.searchsorted(np.sort(values), EDGES, side="right")
        return Histogram(
            (*((e, float(c)) for e, c in zip(EDGES, cumulative, strict=True)), (INF, float(requests)))
        )

    return VariantWindow(
        variant=name,
        requests=float(requests),
        errors=float(rng.binomial(requests, error_rate)),
        ttft=histogram(ttft),
        latency=histogram(latency),
        eval_score_sum=float(scores.sum()),
        eval_score_count=float(judged),
        eval_passed=judged - failed,
        eval_failed=failed,
        input_tokens=float(INPUT_TOKENS * requests),
        output_tokens=float(output.sum()),
        custom={},
    )


def simulated_rollout_rolls_back(
    rng: np.random.Generator, spec: SLOs, alpha: float, looks: int, tests: set[str] | None = None
) -> bool:
    """Whether a healthy candidate was rolled back; `tests` collects the rate-ratio tests that ran."""
    state: SequentialState | None = None
    for look in range(looks):
        step = min(look // 12, 3)
        weight = STEP_WEIGHTS[step]
        requests = int(rng.poisson(200))
        candidate_requests = int(rng.binomial(requests, weight / 100))
        # The baseline error rate wanders and an outage doubles it for both versions.
        error_rate = 0.01 * (2.0 if look in (20, 21) else 1.0) * (1 + 0.5 * math.sin(look / 4))
        window = Window(
            start=60.0 * look,
            end=60.0 * (look + 1),
            variants={
                "v2": simulated_variant(rng, "v2", candidate_requests, error_rate),
                "v1": simulated_variant(rng, "v1", requests - candidate_requests, error_rate),
            },
        )
        evaluation = evaluate_sequential(
            spec,
            window,
            candidate="v2",
            stable="v1",
            state=state,
            false_rollback_rate=alpha,
            min_requests=50,
            step=step,
            candidate_weight=weight,
            pricing=PRICING,
        )
        if tests is not None:
            tests.update(evaluation.state.ratio_tests)
        if evaluation.verdict is Verdict.FAIL:
            return True
        state = evaluation.state
    return False


def test_healthy_candidates_over_fifty_looks_roll_back_at_most_the_configured_rate() -> None:
    # Every statistically tested SLO, set where the healthy candidate sits close to its bounds, except
    # TTFT's: well above stable's p95 (0.3 s), so that its test at stable's p95 edge runs too.
    spec = slos(
        quality={"minScore": 0.85, "maxDropVsStable": 0.02},
        ttft={"p95": "800ms"},
        latency={"p95": "1.5s"},
        errorRate={"max": 0.012},
        costPerRequest={"maxUSD": COST_PER_REQUEST},
    )
    alpha = 0.1
    replicates = 300
    rng = np.random.default_rng(2024)
    tests: set[str] = set()
    rollbacks = sum(simulated_rollout_rolls_back(rng, spec, alpha, 50, tests) for _ in range(replicates))
    # Stable's p95 edge is read from one small window: 0.25 s in most rollouts, 0.5 s in some.
    assert {key.split("@")[0] for key in tests} == {
        "errorRate",
        "quality.evalFailRate",
        "ttft.p95",
        "ttft.p95.stableP95",
        "latency.p95",
    }
    sampling_error = math.sqrt(alpha * (1 - alpha) / replicates)
    assert rollbacks / replicates <= alpha + 3 * sampling_error


# --- intermediate steps pass on no evidence of harm; only the final step needs the proof ----------


def look_at(
    spec: SLOs,
    candidate: VariantWindow,
    stable: VariantWindow,
    *,
    state: SequentialState | None = None,
    look: int = 0,
    step: int = 0,
    weight: int = 10,
    final_step: bool = True,
    config: SequentialConfig = NO_WARMUP,
) -> SequentialEvaluation:
    return evaluate_sequential(
        spec,
        Window(start=60.0 * look, end=60.0 * (look + 1), variants={"v2": candidate, "v1": stable}),
        candidate="v2",
        stable="v1",
        state=state,
        false_rollback_rate=0.01,
        min_requests=100,
        step=step,
        candidate_weight=weight,
        pricing=PRICING,
        config=config,
        final_step=final_step,
    )


def test_final_step_defaults_to_the_full_proof() -> None:
    assert inspect.signature(evaluate_sequential).parameters["final_step"].default is True


def test_an_intermediate_step_passes_on_no_evidence_of_harm_where_the_final_step_holds() -> None:
    # 1.5% errors under a 2% SLO: 200 requests cannot prove the upper bound within 2%.
    spec = slos(errorRate={"max": 0.02})
    candidate, stable = variant("v2", 200.0, error_rate=0.015), variant("v1", 1800.0, error_rate=0.015)
    intermediate = look_at(spec, candidate, stable, final_step=False)
    final = look_at(spec, candidate, stable, final_step=True)
    assert final.verdict is Verdict.INCONCLUSIVE
    assert "upper bound not yet <= 0.020" in final.reason
    assert intermediate.verdict is Verdict.PASS
    assert "passes on no evidence of harm" in intermediate.reason
    assert "0 of 1 SLOs proven" in intermediate.reason
    [result] = intermediate.results
    assert result.verdict is Verdict.PASS
    assert "by point estimate, no evidence of harm" in result.message
    assert "not yet proven" in result.message
    # The evidence is the same either way: only the rule that reads it differs.
    assert intermediate.state == final.state


def test_the_final_step_passes_only_on_the_full_proof_and_says_so() -> None:
    evaluations = list(rollout(EVERY_SLO, healthy, final_steps=True))
    assert all(e.verdict is not Verdict.FAIL for e in evaluations)
    final = [e for look, e in enumerate(evaluations) if is_final_step(look // LOOKS_PER_STEP)]
    passed = [e for e in final if e.verdict is Verdict.PASS]
    assert passed
    for evaluation in passed:
        assert "every upper bound within its SLO (full proof)" in evaluation.reason
        assert all("no evidence of harm" not in r.message for r in evaluation.results)


def test_healthy_candidates_pass_intermediate_steps_sooner() -> None:
    proof = list(rollout(EVERY_SLO, healthy))
    no_harm = list(rollout(EVERY_SLO, healthy, final_steps=True))
    first_proof, _ = first_verdict(iter(proof), Verdict.PASS)
    first_no_harm, passed = first_verdict(iter(no_harm), Verdict.PASS)
    assert first_no_harm < first_proof
    assert "no evidence of harm" in passed.reason


def test_a_point_estimate_beyond_the_slo_holds_an_intermediate_step() -> None:
    # 2.5% errors on both versions: no rollback test crosses (not worse than stable), but the
    # candidate's point estimate breaches the 2% SLO, so the safety net holds the step.
    spec = slos(errorRate={"max": 0.02})
    candidate, stable = variant("v2", 200.0, error_rate=0.025), variant("v1", 1800.0, error_rate=0.025)
    evaluation = look_at(spec, candidate, stable, final_step=False)
    assert evaluation.verdict is Verdict.INCONCLUSIVE
    assert "upper bound not yet <= 0.020" in evaluation.reason


def test_no_evidence_of_harm_still_needs_min_requests_and_data() -> None:
    spec = slos(errorRate={"max": 0.02}, ttft={"p95": "800ms"})
    stable = variant("v1", 1800.0, error_rate=0.015)
    few = look_at(spec, variant("v2", 50.0, error_rate=0.015), stable, final_step=False)
    assert few.verdict is Verdict.INCONCLUSIVE
    assert "waiting for minRequests 100 in step 0: v2 50" in few.reason
    missing = look_at(
        spec, replace(variant("v2", 200.0, error_rate=0.015), ttft=None), stable, final_step=False
    )
    assert missing.verdict is Verdict.INCONCLUSIVE
    assert "series missing" in missing.reason


def test_a_crossed_rollback_test_fails_an_intermediate_step() -> None:
    evaluations = list(rollout(EVERY_SLO, lambda n: variant("v2", n, error_rate=0.05), final_steps=True))
    look, failed = first_verdict(iter(evaluations), Verdict.FAIL)
    assert look < 2 * LOOKS_PER_STEP
    assert failed.reason.startswith("errorRate on v2 worse")


# --- warm-up ------------------------------------------------------------------------------------------


WARMUP = SequentialConfig()  # the default: 120 s


def warmup_rollout(
    spec: SLOs, candidate: Callable[[int], VariantWindow], looks: int, stable_error_rate: float = 0.01
) -> list[SequentialEvaluation]:
    state: SequentialState | None = None
    evaluations = []
    for look in range(looks):
        stable = variant("v1", 1800.0, error_rate=stable_error_rate if look < 2 else 0.01)
        evaluation = look_at(spec, candidate(look), stable, state=state, look=look, config=WARMUP)
        state = load_state(json.loads(json.dumps(evaluation.state.to_status())))
        evaluations.append(evaluation)
    return evaluations


def test_the_warm_up_is_not_counted_as_evidence() -> None:
    assert WARMUP.warmup_seconds == 120.0
    spec = slos(errorRate={"max": 0.05}, ttft={"p95": "800ms"})

    # Four times stable's error rate and three times its TTFT for the first two minutes, then healthy.
    def cold(look: int) -> VariantWindow:
        if look < 2:
            return variant("v2", 200.0, error_rate=0.04, ttft_scale=0.3)
        return variant("v2", 200.0)

    evaluations = warmup_rollout(spec, cold, 6)
    for evaluation in evaluations[:2]:
        assert evaluation.verdict is Verdict.INCONCLUSIVE
        assert "warm-up of v2 until 120" in evaluation.reason
        # Stable's p95 edge is chosen in the warm-up, with no evidence counted at it.
        tests = evaluation.state.ratio_tests
        assert list(tests) == ["ttft.p95.stableP95@0.25"]
        assert tests["ttft.p95.stableP95@0.25"].candidate_exposure == 0.0
        assert evaluation.state.step_requests == {}
        # A value (not missing data): the state machine gathers rather than counting an inconclusive.
        assert all(r.value is not None and "warm-up" in r.message for r in evaluation.results)
    assert evaluations[0].state.started_at == 0.0
    assert all(e.verdict is not Verdict.FAIL for e in evaluations)
    # From the third window on, the tests count only what came after the warm-up.
    assert evaluations[2].state.ratio_tests["errorRate"].candidate_exposure == 200.0
    assert evaluations[2].state.step_requests["candidate"] == 200.0
    assert evaluations[-1].state.ratio_tests["errorRate"].candidate_exposure == 800.0
    # Without a warm-up the same cold start is a rollback.
    no_warmup = list(rollout(spec, lambda n: variant("v2", n)))  # sanity: healthy never fails
    assert all(e.verdict is not Verdict.FAIL for e in no_warmup)
    state: SequentialState | None = None
    verdicts = []
    for look in range(6):
        evaluation = look_at(spec, cold(look), variant("v1", 1800.0), state=state, look=look)
        state = evaluation.state
        verdicts.append(evaluation.verdict)
    assert Verdict.FAIL in verdicts


def test_a_severe_breach_during_the_warm_up_rolls_back() -> None:
    spec = slos(errorRate={"max": 0.02}, ttft={"p95": "800ms"})
    # 12% errors is more than 5 x the 2% SLO (and 5 x stable's 1%), on 60 requests.
    [evaluation] = warmup_rollout(spec, lambda look: variant("v2", 60.0, error_rate=0.12), 1)
    assert evaluation.verdict is Verdict.FAIL
    assert "severely breached during warm-up" in evaluation.reason
    assert evaluation.state.failures["errorRate"] == evaluation.reason
    # TTFT: most requests above the 800 ms bound is more than 5 x the 5% a p95 allows.
    [slow] = warmup_rollout(spec, lambda look: variant("v2", 60.0, ttft_scale=2.0), 1)
    assert slow.verdict is Verdict.FAIL
    assert slow.reason.startswith("ttft p95 on v2 severely breached during warm-up")


def test_a_severe_breach_needs_enough_requests_and_must_not_hit_stable_too() -> None:
    spec = slos(errorRate={"max": 0.02})
    # 40 requests a window: the rule waits for 50, which the second warm-up window brings.
    evaluations = warmup_rollout(spec, lambda look: variant("v2", 40.0, error_rate=0.12), 2)
    assert [e.verdict for e in evaluations] == [Verdict.INCONCLUSIVE, Verdict.FAIL]
    assert "n=80" in evaluations[1].reason
    # An outage that fails 30% of both versions' requests is not the candidate's fault.
    outage = warmup_rollout(spec, lambda look: variant("v2", 200.0, error_rate=0.3), 2, stable_error_rate=0.3)
    assert all(e.verdict is Verdict.INCONCLUSIVE for e in outage)


def test_only_a_new_candidate_warms_up() -> None:
    spec = slos(errorRate={"max": 0.02})
    candidate, stable = variant("v2", 200.0), variant("v1", 1800.0)
    first = look_at(spec, candidate, stable, config=WARMUP)
    assert "warm-up" in first.reason
    # A new stable restarts the evidence, but the candidate is already serving: no warm-up.
    new_stable = evaluate_sequential(
        spec,
        Window(start=60.0, end=120.0, variants={"v2": candidate, "v3": variant("v3", 1800.0)}),
        candidate="v2",
        stable="v3",
        state=first.state,
        false_rollback_rate=0.01,
        min_requests=100,
        step=0,
        candidate_weight=10,
        pricing=PRICING,
        config=WARMUP,
    )
    assert new_stable.state.started_at is None
    assert "warm-up" not in new_stable.reason
    assert new_stable.state.ratio_tests["errorRate"].candidate_exposure == 200.0
    # State written before warm-ups existed has no startedAt: its candidate is long warm.
    status = first.state.to_status()
    del status["startedAt"]
    old = load_state(status)
    assert old is not None and old.started_at is None
    later = look_at(spec, candidate, stable, state=old, look=1, config=WARMUP)
    assert "warm-up" not in later.reason
