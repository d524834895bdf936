"""The engine end to end against stand-in model and judge servers on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.judge.standin import OpenAIStandIn, Reply, good, last_user
from llmrollout.eval import (
    Budget,
    Evaluator,
    Meter,
    OpenAIClient,
    Pricing,
    RetryPolicy,
    ScorerConfig,
    Target,
    load_golden_set,
    scorer_for,
)

GOLDEN = load_golden_set(
    "\n".join(
        json.dumps({"id": f"q{i}", "prompt": f"question {i}", "reference": f"answer {i}"}) for i in range(40)
    )
)


def model(quality: float) -> Any:
    """A model server that answers a fixed share `quality` of the questions right."""

    def answer(body: dict[str, Any]) -> str:
        question = last_user(body)
        number = question.split()[-1]
        return f"answer {number}" if good(question, quality) else "I am not sure."

    return answer


def judge(body: dict[str, Any]) -> str:
    """A judge whose verdicts follow the scripted quality: 0.9 when the answer is the reference."""
    prompt = last_user(body)
    reference = prompt.split("Reference answer (may be empty):\n")[1].split("\n")[0]
    answer = prompt.split("Answer to grade:\n")[1].split("\n")[0]
    return json.dumps({"score": 0.9 if answer == reference else 0.1, "reason": "scripted"})


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def test_run_scores_every_item_with_a_judge(http: httpx.Client) -> None:
    with OpenAIStandIn(chat=model(0.75)) as bot, OpenAIStandIn(chat=judge) as judge_server:
        judge_client = OpenAIClient(http, judge_server.base_url, meter=Meter(Pricing(1.0, 1.0)))
        scorer = scorer_for(ScorerConfig("llmJudge", judge_model="j"), judge=judge_client)
        target = Target("v2", OpenAIClient(http, bot.base_url, meter=Meter(Pricing(0.5, 0.5))), "m")
        seen: list[tuple[int, int]] = []
        result = Evaluator(scorer, concurrency=4, scorer_meters=[judge_client.meter]).run(
            GOLDEN, target, lambda done, total: seen.append((done, total))
        )
    right = sum(good(f"question {i}", 0.75) for i in range(40))
    assert 20 < right < 40  # the script gives a mix, so the test can tell scores apart
    assert result.counts == {"pass": right, "fail": 40 - right}
    assert result.mean_score == pytest.approx((0.9 * right + 0.1 * (40 - right)) / 40)
    assert [r.item_id for r in result.items] == [i.id for i in GOLDEN]
    assert sorted(seen) == [(n, 40) for n in range(1, 41)]
    assert result.usage.prompt_tokens == 40 * 20
    assert result.cost_usd == pytest.approx(40 * 28 * 0.5 / 1e6)


def test_an_unanswered_item_is_an_error_that_counts_as_zero(http: httpx.Client) -> None:
    def flaky(body: dict[str, Any]) -> Reply | str:
        question = last_user(body)
        return (
            Reply(503, {"error": "down"})
            if question == "question 3"
            else question.replace("question", "answer")
        )

    with OpenAIStandIn(chat=flaky) as bot:
        client = OpenAIClient(http, bot.base_url, retry=RetryPolicy(attempts=2), sleep=lambda _: None)
        result = Evaluator(scorer_for(ScorerConfig("contains"))).run(GOLDEN[:5], Target("v2", client, "m"))
    assert [r.verdict for r in result.items] == ["pass", "pass", "pass", "error", "pass"]
    assert "v2 did not answer" in result.items[3].detail
    assert result.items[3].gate_score == 0.0
    assert result.mean_score == pytest.approx(0.8)


def test_a_cost_budget_skips_the_rest(http: httpx.Client) -> None:
    # Each answer costs 28 tokens at $1000/M = $0.028; the budget allows four answers to start.
    with OpenAIStandIn(chat=model(1.0)) as bot:
        client = OpenAIClient(http, bot.base_url, meter=Meter(Pricing(1000.0, 1000.0)))
        evaluator = Evaluator(
            scorer_for(ScorerConfig("contains")), budget=Budget(max_cost_usd=0.1), concurrency=1
        )
        result = evaluator.run(GOLDEN[:10], Target("v2", client, "m"))
    assert result.counts == {"pass": 4, "skipped": 6}
    assert result.stopped is not None and "cost budget $0.1 spent" in result.stopped
    assert result.mean_score == 1.0  # skipped items are not scored as failures


def test_a_time_budget_skips_the_rest_by_the_injected_clock(http: httpx.Client) -> None:
    ticks = itertools.count()
    with OpenAIStandIn(chat=model(1.0)) as bot:
        evaluator = Evaluator(
            scorer_for(ScorerConfig("contains")),
            budget=Budget(max_seconds=3),
            concurrency=1,
            clock=lambda: float(next(ticks)),
        )
        result = evaluator.run(GOLDEN[:10], Target("v2", OpenAIClient(http, bot.base_url), "m"))
    assert result.counts == {"pass": 2, "skipped": 8}
    assert result.stopped == "time budget 3s spent"


def test_paired_run_keeps_pairs_whole(http: httpx.Client) -> None:
    with OpenAIStandIn(chat=model(0.5)) as candidate, OpenAIStandIn(chat=model(0.9)) as stable:
        evaluator = Evaluator(
            scorer_for(ScorerConfig("exactMatch")), budget=Budget(max_cost_usd=0.0), concurrency=2
        )
        skipped = evaluator.run_paired(
            GOLDEN,
            Target("v2", OpenAIClient(http, candidate.base_url), "m"),
            Target("v1", OpenAIClient(http, stable.base_url), "m"),
        )
        assert skipped.candidate.counts == skipped.baseline.counts == {"skipped": 40}
        paired = Evaluator(scorer_for(ScorerConfig("exactMatch")), concurrency=4).run_paired(
            GOLDEN,
            Target("v2", OpenAIClient(http, candidate.base_url), "m"),
            Target("v1", OpenAIClient(http, stable.base_url), "m"),
        )
    assert [r.item_id for r in paired.candidate.items] == [r.item_id for r in paired.baseline.items]
    assert paired.candidate.mean_score is not None and paired.baseline.mean_score is not None
    assert paired.candidate.mean_score < paired.baseline.mean_score


def test_pairwise_judging_scores_the_preferred_answer(http: httpx.Client) -> None:
    def prefers_right(body: dict[str, Any]) -> str:
        prompt = last_user(body)
        a = prompt.split("Answer A:\n")[1].split("\n")[0]
        b = prompt.split("Answer B:\n")[1].split("\n")[0]
        if a.startswith("answer") == b.startswith("answer"):
            return '{"winner": "tie"}'
        return '{"winner": "A"}' if a.startswith("answer") else '{"winner": "B"}'

    with (
        OpenAIStandIn(chat=model(0.5)) as candidate,
        OpenAIStandIn(chat=model(1.0)) as stable,
        OpenAIStandIn(chat=prefers_right) as judge_server,
    ):
        scorer = scorer_for(
            ScorerConfig("llmJudge", judge_model="j"), judge=OpenAIClient(http, judge_server.base_url)
        )
        paired = Evaluator(scorer).run_paired(
            GOLDEN[:10],
            Target("v2", OpenAIClient(http, candidate.base_url), "m"),
            Target("v1", OpenAIClient(http, stable.base_url), "m"),
            pairwise=True,
        )
        assert len(judge_server.requests) == 20  # both orders for every item
    for c, b, preference in zip(paired.candidate.items, paired.baseline.items, paired.pairwise, strict=True):
        assert (c.score, b.score) == ((0.5, 0.5) if preference == "tie" else (0.0, 1.0))
    assert set(paired.pairwise) == {"tie", "second"}


class Exploding:
    name = "exploding"
    needs_reference = False

    def score(self, exchange: Any) -> Any:
        raise RuntimeError("bug")


def test_a_scorer_that_raises_marks_the_item_not_the_run(http: httpx.Client) -> None:
    with OpenAIStandIn(chat=model(1.0)) as bot:
        result = Evaluator(Exploding()).run(GOLDEN[:3], Target("v2", OpenAIClient(http, bot.base_url), "m"))
    assert [r.verdict for r in result.items] == ["error"] * 3
    assert "scorer raised RuntimeError('bug')" in result.items[0].detail
    assert result.items[0].answer == "answer 0"
