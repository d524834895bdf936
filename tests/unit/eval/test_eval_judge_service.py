"""The judge service on a local port: sampling, the bounded queue, and what /metrics exports."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.judge.standin import OpenAIStandIn, last_user
from llmrollout.eval import OpenAIClient, RetryPolicy, ScorerConfig, scorer_for
from llmrollout.eval.judge import JudgeService, JudgeSettings


def samples(service: JudgeService) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(service.url + "/metrics").text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(service: JudgeService, name: str, **labels: str) -> float:
    return samples(service).get((name, frozenset(labels.items())), 0.0)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def judge_script(body: dict[str, Any]) -> str:
    """A judge whose verdict follows the answer: 'good' answers score 0.9, 'bad' 0.3, others garble."""
    answer = last_user(body).split("Answer to grade:\n")[1].split("\n")[0]
    return {"good": '{"score": 0.9}', "bad": '{"score": 0.3}'}.get(answer, "Hmm, hard to say.")


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def exchange(variant: str, response: str) -> dict[str, Any]:
    return {"variant": variant, "prompt": "How do I reset my password?", "response": response}


def test_scores_sampled_exchanges_into_llm_eval_metrics(http: httpx.Client) -> None:
    with OpenAIStandIn(chat=judge_script) as judge:
        scorer = scorer_for(
            ScorerConfig("llmJudge", judge_model="j"), judge=OpenAIClient(http, judge.base_url)
        )
        with JudgeService(scorer, JudgeSettings(sample_rate=1.0)) as service:
            for variant, answer in [("v1", "good"), ("v1", "good"), ("v2", "bad"), ("v2", "garbled")]:
                reply = http.post(service.url + "/v1/exchanges", json=exchange(variant, answer))
                assert reply.status_code == 202
                assert reply.json() == {"sampled": 1, "not_sampled": 0, "dropped": 0}
            wait_for(lambda: value(service, "llmrollout_judge_latency_seconds_count") == 4, "4 scored")
            assert value(service, "llm_eval_score_count", variant="v1") == 2
            assert value(service, "llm_eval_score_sum", variant="v1") == pytest.approx(1.8)
            assert value(service, "llm_eval_score_bucket", variant="v1", le="0.8") == 0
            assert value(service, "llm_eval_score_bucket", variant="v1", le="0.9") == 2
            assert value(service, "llm_eval_score_bucket", variant="v2", le="0.3") == 1
            assert value(service, "llm_eval_results_total", variant="v1", result="pass") == 2
            assert value(service, "llm_eval_results_total", variant="v2", result="fail") == 1
            # The garbled verdict is counted as unscored, never as a pass (nor a score).
            assert value(service, "llm_eval_results_total", variant="v2", result="pass") == 0
            assert value(service, "llm_eval_score_count", variant="v2") == 1
            assert value(service, "llmrollout_judge_unscored_total", variant="v2", reason="unparseable") == 1


def test_score_buckets_resolve_a_0_8_bar() -> None:
    from llmrollout.eval.judge.metrics import SCORE_BUCKETS

    assert {0.78, 0.79, 0.8, 0.81, 0.82} <= set(SCORE_BUCKETS)
    assert SCORE_BUCKETS[-1] == 1.0 and list(SCORE_BUCKETS) == sorted(set(SCORE_BUCKETS))


def test_sampling_follows_the_rate(http: httpx.Client) -> None:
    scorer = scorer_for(ScorerConfig("contains"))
    rng_copy = random.Random(5)
    expected = sum(rng_copy.random() < 0.3 for _ in range(50))
    with JudgeService(scorer, JudgeSettings(sample_rate=0.3), rng=random.Random(5)) as service:
        batch = [{**exchange("v1", "ok"), "reference": "ok"} for _ in range(50)]
        reply = http.post(service.url + "/v1/exchanges", json=batch)
        assert reply.json() == {"sampled": expected, "not_sampled": 50 - expected, "dropped": 0}
        wait_for(lambda: value(service, "llm_eval_score_count", variant="v1") == expected, "scored")
        assert (
            value(service, "llmrollout_judge_exchanges_total", variant="v1", outcome="not_sampled")
            == 50 - expected
        )


def test_a_full_queue_drops_and_counts_instead_of_blocking(http: httpx.Client) -> None:
    release = threading.Event()

    def stuck_judge(body: dict[str, Any]) -> str:
        release.wait(10)
        return '{"score": 1}'

    with OpenAIStandIn(chat=stuck_judge) as judge:
        scorer = scorer_for(
            ScorerConfig("llmJudge", judge_model="j"), judge=OpenAIClient(http, judge.base_url)
        )
        with JudgeService(scorer, JudgeSettings(sample_rate=1.0, queue_size=3, workers=1)) as service:
            http.post(service.url + "/v1/exchanges", json=exchange("v2", "first"))
            wait_for(lambda: len(judge.requests) == 1, "the worker to hold the first exchange")
            reply = http.post(service.url + "/v1/exchanges", json=[exchange("v2", "x")] * 9)
            assert reply.json() == {"sampled": 3, "not_sampled": 0, "dropped": 6}
            assert value(service, "llmrollout_judge_queue_depth") == 3
            assert value(service, "llmrollout_judge_queue_capacity") == 3
            assert value(service, "llmrollout_judge_dropped_total", variant="v2") == 6
            release.set()
            wait_for(lambda: value(service, "llm_eval_score_count", variant="v2") == 4, "the queue to drain")
            assert value(service, "llmrollout_judge_queue_depth") == 0


def test_feedback_counts_up_and_down(http: httpx.Client) -> None:
    with JudgeService(scorer_for(ScorerConfig("contains"))) as service:
        for vote in ["up", "down", "down"]:
            assert (
                http.post(service.url + "/v1/feedback", json={"variant": "v2", "value": vote}).status_code
                == 202
            )
        assert value(service, "llm_feedback_total", variant="v2", value="down") == 2
        assert value(service, "llm_feedback_total", variant="v2", value="up") == 1
        bad = http.post(service.url + "/v1/feedback", json={"variant": "v2", "value": "meh"})
        assert bad.status_code == 400 and "value" in bad.json()["error"]


def test_the_accepted_variants_series_exist_at_zero_from_the_start() -> None:
    settings = JudgeSettings(variants=frozenset({"v1", "v2"}))
    with JudgeService(scorer_for(ScorerConfig("contains")), settings) as service:
        exported = samples(service)
    for variant in ("v1", "v2"):
        assert exported[("llm_eval_score_count", frozenset({("variant", variant)}))] == 0
        for result in ("pass", "fail"):
            assert (
                exported[("llm_eval_results_total", frozenset({("variant", variant), ("result", result)}))]
                == 0
            )
        for vote in ("up", "down"):
            assert exported[("llm_feedback_total", frozenset({("variant", variant), ("value", vote)}))] == 0


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "not JSON"),
        (json.dumps({"prompt": "q", "response": "a"}).encode(), 400, "variant: Field required"),
        (
            json.dumps({"variant": "V 2", "prompt": "q", "response": "a"}).encode(),
            400,
            "variant: String should match",
        ),
        (json.dumps({"variant": "v2", "response": "a"}).encode(), 400, "exactly one of messages or prompt"),
        (json.dumps({"variant": "v9", "prompt": "q", "response": "a"}).encode(), 400, "unknown variant v9"),
    ],
)
def test_bad_requests_are_refused_with_the_field(
    http: httpx.Client, body: bytes, status: int, error: str
) -> None:
    settings = JudgeSettings(sample_rate=1.0, variants=frozenset({"v1", "v2"}))
    with JudgeService(scorer_for(ScorerConfig("contains")), settings) as service:
        reply = http.post(
            service.url + "/v1/exchanges", content=body, headers={"content-type": "application/json"}
        )
        assert reply.status_code == status
        assert error in reply.json()["error"]
        assert http.get(service.url + "/healthz").json()["status"] == "ok"


def test_a_judge_outage_is_unscored_not_failed(http: httpx.Client) -> None:
    with OpenAIStandIn(chat=lambda _: {"error": "no choices"}) as judge:
        client = OpenAIClient(http, judge.base_url, retry=RetryPolicy(attempts=1))
        scorer = scorer_for(ScorerConfig("llmJudge", judge_model="j"), judge=client)
        with JudgeService(scorer, JudgeSettings(sample_rate=1.0)) as service:
            http.post(service.url + "/v1/exchanges", json=exchange("v2", "good"))
            wait_for(
                lambda: value(service, "llmrollout_judge_unscored_total", variant="v2", reason="error") == 1,
                "error",
            )
            assert value(service, "llm_eval_results_total", variant="v2", result="fail") == 0
