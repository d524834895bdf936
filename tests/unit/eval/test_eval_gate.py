"""The golden-set gate from an LLMDeployment spec, against stand-in variant and judge servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bench.judge.standin import OpenAIStandIn, Reply, good, last_user
from llmrollout.api import parse_spec
from llmrollout.eval.gate import run_golden_set_gate, variant_endpoint

REPO = Path(__file__).resolve().parents[3]
GOLDEN = "\n".join(
    json.dumps({"id": f"q{i:02d}", "prompt": f"question {i}", "reference": f"answer {i}"}) for i in range(80)
)


def model(quality: float) -> Any:
    def answer(body: dict[str, Any]) -> str:
        question = last_user(body)
        return f"answer {question.split()[-1]}" if good(question, quality) else "unsure"

    return answer


def spec_for(v1: str, v2: str, judge: str, golden: dict[str, Any]) -> Any:
    raw: dict[str, Any] = yaml.safe_load((REPO / "examples/basic.yaml").read_text())["spec"]
    raw["stable"], raw["candidate"] = "v1", "v2"
    for variant in raw["variants"]:
        variant.pop("endpoint", None)
        if variant["name"] == "v1":
            variant["endpoint"] = v1
        if variant["name"] == "v2":
            variant["endpoint"] = v2
            variant["pricing"] = {"inputPerMillionTokens": 1000, "outputPerMillionTokens": 1000}
    raw["evaluation"] = {
        "goldenSet": {
            "configMapRef": {"name": "golden"},
            "scorer": "llmJudge",
            "judge": {
                "endpoint": judge,
                "model": "judge-small",
                "apiKeySecretRef": {"name": "s", "key": "k"},
            },
            **golden,
        }
    }
    raw["analysis"] = {"falseRollbackRate": 0.01}
    return parse_spec(raw)


def judge_script(body: dict[str, Any]) -> str:
    prompt = last_user(body)
    reference = prompt.split("Reference answer (may be empty):\n")[1].split("\n")[0]
    answer = prompt.split("Answer to grade:\n")[1].split("\n")[0]
    return json.dumps({"score": 1 if answer == reference else 0})


@pytest.mark.parametrize(("candidate_quality", "passed"), [(0.5, False), (0.95, True)])
def test_gate_pairs_candidate_and_stable_and_decides(candidate_quality: float, passed: bool) -> None:
    with (
        OpenAIStandIn(chat=model(0.95)) as stable,
        OpenAIStandIn(chat=model(candidate_quality)) as candidate,
        OpenAIStandIn(chat=judge_script) as judge,
        httpx.Client() as http,
    ):
        spec = spec_for(
            stable.base_url, candidate.base_url, judge.base_url, {"minScore": 0.8, "maxDropVsStable": 0.05}
        )
        secrets: list[tuple[str, str]] = []
        gate = run_golden_set_gate(
            spec,
            "team-a",
            GOLDEN,
            http,
            candidate="v2",
            stable="v1",
            read_secret=lambda name, key: secrets.append((name, key)) or "sk-test",
        )
        assert {r[1]["model"] for r in judge.requests} == {"judge-small"}
        assert len(candidate.requests) == len(stable.requests) == 80
    decision = gate.decision
    assert decision.passed is passed
    assert decision.n == 80
    assert secrets == [("s", "k")]
    if not passed:
        assert decision.reason == "GoldenSetFailed"
        assert decision.method == "exact"
        assert "n=80" in decision.message and "drop" in decision.message
        pairs = zip(gate.run.candidate.items, gate.run.baseline.items, strict=True)
        lost = {c.item_id for c, b in pairs if c.gate_score < b.gate_score}
        assert decision.worst_items and set(decision.worst_items) <= lost


def test_gate_cost_budget_cuts_pairs_and_decides_on_the_rest() -> None:
    with (
        OpenAIStandIn(chat=model(0.95)) as stable,
        OpenAIStandIn(chat=model(0.95)) as candidate,
        OpenAIStandIn(chat=judge_script) as judge,
        httpx.Client() as http,
    ):
        # Candidate answers cost 28 tokens at $1000/M each; $0.5 lets about 18 pairs start.
        golden = {"minScore": 0.5, "maxCostUSD": 0.5, "concurrency": 1}
        spec = spec_for(stable.base_url, candidate.base_url, judge.base_url, golden)
        gate = run_golden_set_gate(spec, "team-a", GOLDEN, http, candidate="v2", stable="v1")
    assert gate.run.stopped is not None and "cost budget" in gate.run.stopped
    assert 10 < gate.decision.n < 80
    assert gate.decision.passed


def test_variant_endpoint_defaults_to_the_service() -> None:
    raw: dict[str, Any] = yaml.safe_load((REPO / "examples/basic.yaml").read_text())["spec"]
    spec = parse_spec(raw)
    v1 = spec.variant("v1").model_copy(update={"endpoint": None})
    assert (
        variant_endpoint(v1, "team-a") == f"http://{v1.backend_ref.name}.team-a.svc:{v1.backend_ref.port}/v1"
    )
    custom = v1.model_copy(update={"endpoint": "https://llm.example.com/v1"})
    assert variant_endpoint(custom, "team-a") == "https://llm.example.com/v1"


def test_a_stable_that_does_not_answer_makes_the_gate_inconclusive() -> None:
    with (
        OpenAIStandIn(chat=lambda _: Reply(404, {"error": "model not found"})) as stable,
        OpenAIStandIn(chat=model(0.95)) as candidate,
        OpenAIStandIn(chat=judge_script) as judge,
        httpx.Client() as http,
    ):
        spec = spec_for(stable.base_url, candidate.base_url, judge.base_url, {"maxDropVsStable": 0.05})
        small = "\n".join(GOLDEN.splitlines()[:8])
        gate = run_golden_set_gate(spec, "team-a", small, http, candidate="v2", stable="v1")
    assert gate.decision.reason == "GoldenSetInconclusive"
    assert "stable did not answer 8 of 8 items" in gate.decision.message
