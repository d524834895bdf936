"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.judge.standin import OpenAIStandIn, Reply, completion, embedding_list
from llmrollout.eval import EndpointError, Meter, OpenAIClient, Pricing, RetryPolicy, Usage


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def scripted(replies: list[Reply]) -> Any:
    queue = list(replies)
    return lambda _body: queue.pop(0) if len(queue) > 1 else queue[0]


def test_chat_sends_the_openai_request_and_meters_tokens_and_cost(http: httpx.Client) -> None:
    with OpenAIStandIn(chat=lambda body: completion("Paris", prompt_tokens=1000, completion_tokens=500)) as s:
        meter = Meter(Pricing(input_per_million=0.5, output_per_million=2.0))
        client = OpenAIClient(http, s.base_url + "/", api_key="k", meter=meter)
        answer = client.chat("m1", [{"role": "user", "content": "Capital of France?"}], max_tokens=16)
        path, body = s.requests[0]
    assert answer.text == "Paris"
    assert answer.usage == Usage(1000, 500)
    assert path == "/v1/chat/completions"
    assert body == {
        "model": "m1",
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "temperature": 0.0,
        "max_tokens": 16,
    }
    metered = meter.snapshot()
    assert (metered.requests, metered.retries, metered.failures) == (1, 0, 0)
    assert metered.cost_usd == pytest.approx((1000 * 0.5 + 500 * 2.0) / 1e6)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retries_with_the_servers_retry_after_then_succeeds(http: httpx.Client, status: int) -> None:
    replies = [Reply(status, {"error": "busy"}, {"Retry-After": "3"}), Reply(body=completion("ok"))]
    sleeps: list[float] = []
    with OpenAIStandIn(chat=scripted(replies)) as s:
        client = OpenAIClient(http, s.base_url, sleep=sleeps.append)
        assert client.chat("m", [{"role": "user", "content": "q"}]).text == "ok"
        assert len(s.requests) == 2
    assert sleeps == [3.0]
    assert client.meter.snapshot().retries == 1


def test_backoff_without_retry_after_grows_and_gives_up(http: httpx.Client) -> None:
    sleeps: list[float] = []
    with OpenAIStandIn(chat=lambda _: Reply(502, {"error": "bad gateway"})) as s:
        client = OpenAIClient(
            http, s.base_url, retry=RetryPolicy(attempts=4, base_delay=1.0), sleep=sleeps.append
        )
        with pytest.raises(EndpointError, match="HTTP 502"):
            client.chat("m", [{"role": "user", "content": "q"}])
        assert len(s.requests) == 4
    assert len(sleeps) == 3
    assert all(0 <= delay <= 2**attempt for attempt, delay in enumerate(sleeps))
    assert client.meter.snapshot().failures == 1


def test_a_client_error_is_not_retried(http: httpx.Client) -> None:
    with OpenAIStandIn(chat=lambda _: Reply(400, {"error": "unknown model"})) as s:
        client = OpenAIClient(http, s.base_url, sleep=lambda _: None)
        with pytest.raises(EndpointError, match="HTTP 400"):
            client.chat("nope", [{"role": "user", "content": "q"}])
        assert len(s.requests) == 1


def test_a_timeout_is_retried_then_reported(http: httpx.Client) -> None:
    with (
        OpenAIStandIn(chat=lambda _: Reply(body=completion("late"), delay=0.5)) as s,
        httpx.Client(timeout=0.05) as impatient,
    ):
        client = OpenAIClient(impatient, s.base_url, retry=RetryPolicy(attempts=2), sleep=lambda _: None)
        with pytest.raises(EndpointError, match="ReadTimeout"):
            client.chat("m", [{"role": "user", "content": "q"}])


@pytest.mark.parametrize(
    "body",
    [{"choices": []}, {"choices": [{"message": {"content": 3}}]}, {"error": "x"}, b"<html>oops</html>"],
)
def test_a_malformed_answer_is_an_endpoint_error(http: httpx.Client, body: Any) -> None:
    with OpenAIStandIn(chat=lambda _: Reply(body=body)) as s, pytest.raises(EndpointError):
        OpenAIClient(http, s.base_url).chat("m", [{"role": "user", "content": "q"}])


def test_concurrency_is_bounded_per_client_across_threads(http: httpx.Client) -> None:
    with OpenAIStandIn(chat=lambda _: Reply(body=completion("ok"), delay=0.05)) as s:
        client = OpenAIClient(http, s.base_url, max_concurrency=2)
        threads = [
            threading.Thread(target=client.chat, args=("m", [{"role": "user", "content": str(i)}]))
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(s.requests) == 8
        assert s.max_in_flight == 2


def test_embeddings_are_put_back_in_input_order(http: httpx.Client) -> None:
    recorded = embedding_list([[1.0, 0.0], [0.0, 1.0]])
    recorded["data"].reverse()
    with OpenAIStandIn(embeddings=lambda _: recorded) as s:
        result = OpenAIClient(http, s.base_url).embed("e", ["first", "second"])
        assert s.requests[0] == ("/v1/embeddings", {"model": "e", "input": ["first", "second"]})
    assert result.vectors == ((1.0, 0.0), (0.0, 1.0))
    assert result.usage == Usage(6, 0)
