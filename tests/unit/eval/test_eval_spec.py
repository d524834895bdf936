"""spec.evaluation and Variant.endpoint: what users write for the golden-set gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmrollout.api import InvalidSpecError, parse_spec

REPO = Path(__file__).resolve().parents[3]


def spec_with(evaluation: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((REPO / "examples/basic.yaml").read_text())["spec"]
    spec["evaluation"] = evaluation
    return spec


def test_golden_set_with_judge_parses_with_defaults() -> None:
    raw = spec_with(
        {
            "goldenSet": {
                "configMapRef": {"name": "support-golden"},
                "scorer": "llmJudge",
                "minScore": 0.8,
                "maxDropVsStable": 0.05,
                "judge": {"endpoint": "http://judge.llm:8000/v1", "model": "qwen2.5-1.5b"},
                "maxCostUSD": 2.5,
            }
        }
    )
    raw["variants"][0]["endpoint"] = "http://bot-v1.team-a.svc:8000/v1"
    spec = parse_spec(raw)
    golden = spec.evaluation.golden_set
    assert golden is not None
    assert golden.key == "golden.jsonl"
    assert golden.max_duration.total_seconds() == 600
    assert golden.max_cost_usd == 2.5
    assert golden.judge is not None and golden.judge.pass_threshold == 0.5
    assert spec.variants[0].endpoint == "http://bot-v1.team-a.svc:8000/v1"


def test_no_evaluation_means_no_gate() -> None:
    raw = spec_with({})
    assert parse_spec(raw).evaluation.golden_set is None


@pytest.mark.parametrize(
    ("golden", "expected"),
    [
        ({"scorer": "llmJudge", "minScore": 0.8}, "scorer llmJudge needs judge"),
        ({"scorer": "embeddingSimilarity", "minScore": 0.8}, "scorer embeddingSimilarity needs embeddings"),
        ({"scorer": "exactMatch"}, "set minScore, maxDropVsStable or both"),
        ({"scorer": "bleu", "minScore": 0.8}, "spec.evaluation.goldenSet.scorer"),
    ],
)
def test_a_golden_set_that_cannot_be_scored_is_refused(golden: dict[str, Any], expected: str) -> None:
    raw = spec_with({"goldenSet": {"configMapRef": {"name": "g"}, **golden}})
    with pytest.raises(InvalidSpecError) as error:
        parse_spec(raw)
    assert expected in str(error.value)


def test_variant_endpoint_must_be_a_url() -> None:
    raw = spec_with({})
    raw["variants"][0]["endpoint"] = "bot-v1:8000"
    with pytest.raises(InvalidSpecError, match=r"spec\.variants\[0\]\.endpoint"):
        parse_spec(raw)
