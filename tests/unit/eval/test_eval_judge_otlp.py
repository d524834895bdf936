"""GenAI events over OTLP/HTTP JSON: parsed by table, then posted to the real service."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from bench.judge.standin import OpenAIStandIn
from llmrollout.eval import OpenAIClient, ScorerConfig, scorer_for
from llmrollout.eval.judge import JudgeService, JudgeSettings
from llmrollout.eval.judge.otlp import EVENT, exchanges_from_logs


def text_parts(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def kv(key: str, value: Any) -> dict[str, Any]:
    """An OTLP JSON attribute; lists and dicts as structured AnyValues, like a Collector forwards them."""

    def any_value(v: Any) -> dict[str, Any]:
        if isinstance(v, str):
            return {"stringValue": v}
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, list):
            return {"arrayValue": {"values": [any_value(x) for x in v]}}
        return {"kvlistValue": {"values": [kv(k, x) for k, x in v.items()]}}

    return {"key": key, "value": any_value(value)}


def payload(records: list[dict[str, Any]], resource: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": [kv(k, v) for k, v in (resource or {}).items()]},
                "scopeLogs": [
                    {"scope": {"name": "opentelemetry.instrumentation.openai_v2"}, "logRecords": records}
                ],
            }
        ]
    }


def details(attributes: dict[str, Any], *, event_attribute: bool = False) -> dict[str, Any]:
    record: dict[str, Any] = {"timeUnixNano": "1764600000000000000", "severityNumber": 5}
    attrs = [kv(k, v) for k, v in attributes.items()]
    if event_attribute:
        attrs.append(kv("event.name", EVENT))
    else:
        record["eventName"] = EVENT
    record["attributes"] = attrs
    return record


QUESTION = [text_parts("user", "How do I reset my password?")]
ANSWER = [{**text_parts("assistant", "Use the reset link on the sign-in page."), "finish_reason": "stop"}]


@pytest.mark.parametrize(
    ("records", "resource", "expected", "rejected"),
    [
        # Structured attribute values, variant on the resource.
        (
            [details({"gen_ai.input.messages": QUESTION, "gen_ai.output.messages": ANSWER})],
            {"variant": "v2"},
            [("v2", "How do I reset my password?", "Use the reset link on the sign-in page.")],
            0,
        ),
        # JSON strings, variant on the record, older event.name attribute, system instructions.
        (
            [
                details(
                    {
                        "gen_ai.input.messages": json.dumps(QUESTION),
                        "gen_ai.output.messages": json.dumps(ANSWER),
                        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
                        "variant": "v1",
                    },
                    event_attribute=True,
                )
            ],
            {"variant": "ignored-when-the-record-has-one"},
            [("v1", "How do I reset my password?", "Use the reset link on the sign-in page.")],
            0,
        ),
        # Other logs are not GenAI events: ignored, not rejected.
        ([{"body": {"stringValue": "GET /healthz 200"}}], {"variant": "v1"}, [], 0),
        # No variant anywhere, or no text: rejected.
        ([details({"gen_ai.input.messages": QUESTION, "gen_ai.output.messages": ANSWER})], {}, [], 1),
        ([details({"gen_ai.input.messages": QUESTION})], {"variant": "v1"}, [], 1),
    ],
)
def test_exchanges_from_logs(
    records: list[dict[str, Any]],
    resource: dict[str, Any],
    expected: list[tuple[str, str, str]],
    rejected: int,
) -> None:
    extracted = exchanges_from_logs(payload(records, resource), "variant")
    assert [(v, e.question, e.response) for v, e in extracted.exchanges] == expected
    assert extracted.rejected == rejected


def test_system_instructions_become_a_system_turn() -> None:
    attrs = {
        "gen_ai.input.messages": QUESTION,
        "gen_ai.output.messages": ANSWER,
        "gen_ai.system_instructions": [{"type": "text", "content": "Be brief."}],
    }
    [(_, exchange)] = exchanges_from_logs(payload([details(attrs)], {"variant": "v1"}), "variant").exchanges
    assert exchange.messages[0] == {"role": "system", "content": "Be brief."}


def test_otlp_logs_reach_the_metrics() -> None:
    settings = JudgeSettings(sample_rate=1.0, otlp_variant_attribute="service.version")
    with OpenAIStandIn(chat=lambda _: '{"score": 0.9}') as judge, httpx.Client() as http:
        scorer = scorer_for(
            ScorerConfig("llmJudge", judge_model="j"), judge=OpenAIClient(http, judge.base_url)
        )
        with JudgeService(scorer, settings) as service:
            body = payload(
                [details({"gen_ai.input.messages": QUESTION, "gen_ai.output.messages": ANSWER})],
                {"service.version": "v2"},
            )
            reply = http.post(service.url + "/v1/logs", json=body)
            assert reply.status_code == 200 and reply.json() == {}
            protobuf = http.post(
                service.url + "/v1/logs",
                content=b"\x0a\x00",
                headers={"content-type": "application/x-protobuf"},
            )
            assert protobuf.status_code == 415 and "encoding: json" in protobuf.json()["error"]
            no_text = payload([details({"gen_ai.input.messages": QUESTION})], {"service.version": "v2"})
            refused = http.post(service.url + "/v1/logs", json=no_text)
            assert refused.json()["partialSuccess"]["rejectedLogRecords"] == "1"
            deadline = time.monotonic() + 10
            while service.registry.get_sample_value("llm_eval_score_count", {"variant": "v2"}) != 1:
                assert time.monotonic() < deadline, "the exchange was not scored"
                time.sleep(0.02)
            passed = {"variant": "v2", "result": "pass"}
            assert service.registry.get_sample_value("llm_eval_results_total", passed) == 1
        prompt = judge.requests[0][1]["messages"][0]["content"]
        assert "How do I reset my password?" in prompt and "Use the reset link" in prompt
