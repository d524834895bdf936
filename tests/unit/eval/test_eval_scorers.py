"""Every scorer on recorded answers; the judge and embeddings on recorded request/response pairs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.judge.standin import OpenAIStandIn, Reply, embedding_list, last_user
from llmrollout.eval import Exchange, OpenAIClient, RetryPolicy, ScorerConfig, UnknownScorerError, scorer_for
from llmrollout.eval.scorers.contains import Contains
from llmrollout.eval.scorers.embedding import EmbeddingSimilarity, cosine
from llmrollout.eval.scorers.exact import ExactMatch
from llmrollout.eval.scorers.json_schema import JSONSchema
from llmrollout.eval.scorers.llm_judge import LLMJudge, read_verdict, read_winner
from llmrollout.eval.scorers.regex import Regex


def exchange(response: str, reference: Any = None, rubric: str | None = None) -> Exchange:
    return Exchange(({"role": "user", "content": "What is 2+2?"},), response, reference, rubric, "q1")


@pytest.mark.parametrize(
    ("scorer", "response", "reference", "verdict"),
    [
        (ExactMatch(), "Paris", "paris", "pass"),
        (ExactMatch(), "  Paris\n", "Paris", "pass"),
        (ExactMatch(), "Paris, France", "Paris", "fail"),
        (ExactMatch(), "Paris", None, "error"),
        (Contains(), "The capital is  Paris.", "capital is paris", "pass"),
        (Contains(), "Lyon", "Paris", "fail"),
        (Regex(), "Order #12345 shipped", r"#\d{5}\b", "pass"),
        (Regex(), "Order #1234 shipped", r"#\d{5}\b", "fail"),
        (Regex(), "anything", r"([unclosed", "error"),
        (Regex(), "anything", {"not": "a pattern"}, "error"),
    ],
)
def test_string_scorers(scorer: Any, response: str, reference: Any, verdict: str) -> None:
    score = scorer.score(exchange(response, reference))
    assert score.verdict == verdict
    assert score.value == {"pass": 1.0, "fail": 0.0, "error": None}[verdict]


PERSON = {
    "type": "object",
    "required": ["name", "age"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
        "kind": {"anyOf": [{"const": "human"}, {"type": "null"}]},
    },
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("response", "schema", "verdict", "detail"),
    [
        ('{"name": "Ada", "age": 36}', PERSON, "pass", ""),
        ('Here you go:\n```json\n{"name": "Ada", "age": 36, "tags": ["a"]}\n```', PERSON, "pass", ""),
        ('{"name": "Ada"}', PERSON, "fail", "missing required 'age'"),
        ('{"name": "Ada", "age": true}', PERSON, "fail", "$.age: expected integer"),
        ('{"name": "Ada", "age": 36.5}', PERSON, "fail", "$.age: expected integer"),
        ('{"name": "Ada", "age": 200}', PERSON, "fail", "maximum 150"),
        ('{"name": "Ada", "age": 3, "x": 1}', PERSON, "fail", "$.x: no value is allowed"),
        ('{"name": "Ada", "age": 3, "tags": ["c"]}', PERSON, "fail", "$.tags[0]"),
        ('{"name": "Ada", "age": 3, "kind": "cat"}', PERSON, "fail", "none of anyOf"),
        ("Ada, 36", PERSON, "fail", "not JSON"),
        ('{"a": 1}', {"type": "object", "patternProperties": {}}, "error", "unsupported keyword"),
        ('{"a": 1}', '{"type": "object"}', "pass", ""),
        ('{"a": 1}', "not json", "error", "not a JSON schema"),
    ],
)
def test_json_schema(response: str, schema: Any, verdict: str, detail: str) -> None:
    score = JSONSchema().score(exchange(response, schema))
    assert score.verdict == verdict
    assert detail in score.detail


# Judge replies as recorded from small instruction-tuned models, including the malformed ones.
@pytest.mark.parametrize(
    ("reply", "score", "passed"),
    [
        ('{"score": 0.9, "reason": "correct"}', 0.9, None),
        ('```json\n{"score": 1, "reason": "matches the reference"}\n```', 1.0, None),
        ('<think>the answer says 4 {"score": 0}</think>{"score": 0.75, "reason": "ok"}', 0.75, None),
        ('{"Score": "4/5", "Reason": "minor omission"}', 0.8, None),
        ('{"score": 8, "max_score": 10}', 0.8, None),
        ('{"verdict": "PASS", "reason": "fine"}', None, True),
        ('{"pass": false}', None, False),
        ('{"score": 0.2, "verdict": "fail"}', 0.2, False),
        ("Score: 4/5\nThe answer is mostly right.", 0.8, None),
        ("The score is 0.6 because it omits a step.", 0.6, None),
        ("Verdict: FAIL - the answer invents a citation.", None, False),
        ("PASS", None, True),
        # Malformed: never a pass.
        ("", None, None),
        ("I think this answer is quite good overall.", None, None),
        ('{"score": 7, "reason": "no scale given"}', None, None),
        ('{"score": "high"}', None, None),
        ('{"score": 0.9, "reason": "cut off', None, None),
        ("Score: 0.9. On reflection, score: 0.3.", None, None),
        ("Verdict: PASS\nVerdict: FAIL", None, None),
        ('{"score": NaN}', None, None),
        ('{"score": true}', None, None),
    ],
)
def test_read_verdict(reply: str, score: float | None, passed: bool | None) -> None:
    reading = read_verdict(reply)
    assert reading.score == (pytest.approx(score) if score is not None else None)
    assert reading.passed is passed


@pytest.mark.parametrize(
    ("reply", "winner"),
    [
        ('{"winner": "A", "reason": "more complete"}', "A"),
        ('{"winner": "tie"}', "tie"),
        ("Winner: B", "B"),
        ("Both are fine.", None),
        ("Winner: A ... actually Winner: B", None),
    ],
)
def test_read_winner(reply: str, winner: str | None) -> None:
    assert read_winner(reply) == winner


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


@pytest.mark.parametrize(
    ("recorded", "verdict", "value"),
    [
        (
            Reply(body={"choices": [{"message": {"content": '{"score": 0.85, "reason": "ok"}'}}]}),
            "pass",
            0.85,
        ),
        (Reply(body={"choices": [{"message": {"content": '{"score": 0.3}'}}]}), "fail", 0.3),
        (Reply(body={"choices": [{"message": {"content": "Looks good to me!"}}]}), "unparseable", None),
        (Reply(body={"choices": [{"message": {"content": '{"score": 1.7}'}}]}), "unparseable", None),
        (Reply(500, {"error": "judge crashed"}), "error", None),
    ],
)
def test_llm_judge_on_recorded_exchanges(
    http: httpx.Client, recorded: Reply, verdict: str, value: Any
) -> None:
    with OpenAIStandIn(chat=lambda _: recorded) as judge_server:
        client = OpenAIClient(http, judge_server.base_url, retry=RetryPolicy(attempts=1))
        judge = LLMJudge(client, "judge-1b", pass_threshold=0.5)
        score = judge.score(exchange("4", reference="4", rubric="Arithmetic must be exact."))
        _, request = judge_server.requests[0]
    assert score.verdict == verdict
    assert score.value == value
    assert not (score.verdict == "unparseable" and score.passed)
    assert request["model"] == "judge-1b"
    assert request["temperature"] == 0.0
    prompt = request["messages"][0]["content"]
    assert "What is 2+2?" in prompt
    assert "Arithmetic must be exact." in prompt
    assert "Answer to grade:\n4" in prompt


def test_a_custom_rubric_template_keeps_literal_braces(http: httpx.Client) -> None:
    template = 'Q: {question}\nA: {answer}\nSay {"score": x}.'
    with OpenAIStandIn(chat=lambda _: '{"score": 1}') as judge_server:
        judge = LLMJudge(OpenAIClient(http, judge_server.base_url), "j", template=template)
        judge.score(exchange("{weird} answer"))
        prompt = judge_server.requests[0][1]["messages"][0]["content"]
    assert prompt == 'Q: What is 2+2?\nA: {weird} answer\nSay {"score": x}.'


def positional_judge(body: dict[str, Any]) -> str:
    """A judge with position bias: it always prefers whatever it is shown first."""
    return '{"winner": "A"}'


def fair_judge(body: dict[str, Any]) -> str:
    prompt = last_user(body)
    a = prompt.split("Answer A:\n")[1].split("\n\nAnswer B:")[0]
    return '{"winner": "A"}' if a == "4" else '{"winner": "B"}'


@pytest.mark.parametrize(
    ("script", "swap", "preference"),
    [
        (fair_judge, True, "first"),
        (positional_judge, True, "inconsistent"),
        (positional_judge, False, "first"),
    ],
)
def test_pairwise_position_swap(http: httpx.Client, script: Any, swap: bool, preference: str) -> None:
    with OpenAIStandIn(chat=script) as judge_server:
        judge = LLMJudge(OpenAIClient(http, judge_server.base_url), "j")
        comparison = judge.compare(exchange(""), "4", "5", swap=swap)
        assert len(judge_server.requests) == (2 if swap else 1)
    assert comparison.preference == preference


def test_cosine() -> None:
    assert cosine((1.0, 0.0), (1.0, 0.0)) == pytest.approx(1.0)
    assert cosine((1.0, 0.0), (0.0, 2.0)) == pytest.approx(0.0)
    assert cosine((0.0, 0.0), (1.0, 0.0)) is None
    assert cosine((1.0,), (1.0, 0.0)) is None


@pytest.mark.parametrize(
    ("vectors", "verdict"),
    [([[0.6, 0.8], [0.6, 0.8]], "pass"), ([[1.0, 0.0], [0.6, 0.8]], "fail"), ([[0.0, 0.0], [1, 0]], "error")],
)
def test_embedding_similarity_on_recorded_vectors(
    http: httpx.Client, vectors: list[list[float]], verdict: str
) -> None:
    with OpenAIStandIn(embeddings=lambda _: embedding_list(vectors)) as server:
        scorer = EmbeddingSimilarity(OpenAIClient(http, server.base_url), "embed-small", threshold=0.9)
        score = scorer.score(exchange("four", reference="4"))
        assert server.requests[0][1] == {"model": "embed-small", "input": ["four", "4"]}
    assert score.verdict == verdict


def test_factory_knows_every_scorer_and_refuses_others(http: httpx.Client) -> None:
    client = OpenAIClient(http, "http://127.0.0.1:9/v1")
    for kind in ("exactMatch", "contains", "regex", "jsonSchema"):
        assert scorer_for(ScorerConfig(kind)).name == kind
    assert scorer_for(ScorerConfig("llmJudge", judge_model="j"), judge=client).name == "llmJudge"
    config = ScorerConfig("embeddingSimilarity", embedding_model="e")
    assert scorer_for(config, embeddings=client).name == "embeddingSimilarity"
    with pytest.raises(UnknownScorerError, match="unknown scorer 'bleu'"):
        scorer_for(ScorerConfig("bleu"))
    with pytest.raises(ValueError, match="needs a judge"):
        scorer_for(ScorerConfig("llmJudge", judge_model="j"))
