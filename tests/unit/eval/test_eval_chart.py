"""The chart's judge component renders as configured (helm template, no cluster).

Uses the helm binary `make setup` caches; without it the test is skipped (the e2e suite builds it).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("LLMROLLOUT_CACHE", Path.home() / ".cache/llmrollout"))
HELM = next(iter(sorted(CACHE.glob("helm-*/helm"), reverse=True)), None)

pytestmark = pytest.mark.skipif(HELM is None, reason="no cached helm; run `make setup`")


def render(*sets: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    args = [str(HELM), "template", "r", str(REPO / "charts/llmrollout"), "--namespace", "llm"]
    for value in sets:
        args += ["--set", value]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def objects(*sets: str) -> list[dict[str, Any]]:
    result = render(*sets)
    assert result.returncode == 0, result.stderr
    return [o for o in yaml.safe_load_all(result.stdout) if o]


def test_disabled_by_default() -> None:
    assert not [o for o in objects() if o["metadata"]["name"].endswith("-judge")]


def test_enabled_judge_renders_deployment_service_and_secret_key() -> None:
    rendered = objects(
        "judge.enabled=true",
        "judge.judgeEndpoint=http://small-judge.llm:8000/v1",
        "judge.judgeModel=qwen2.5-1.5b-instruct",
        "judge.apiKeySecret.name=judge-key",
        "judge.sampleRate=0.1",
        "judge.variants={v1,v2}",
    )
    by_kind = {o["kind"]: o for o in rendered if o["metadata"]["name"] == "r-judge"}
    deployment, service = by_kind["Deployment"], by_kind["Service"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[0] == "judge"
    for expected in (
        "--scorer=llmJudge",
        "--judge-endpoint=http://small-judge.llm:8000/v1",
        "--judge-model=qwen2.5-1.5b-instruct",
        "--sample-rate=0.1",
        "--variant=v1",
        "--variant=v2",
        "--api-key-env=LLMROLLOUT_JUDGE_API_KEY",
    ):
        assert expected in args
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "judge-key", "key": "api-key"}
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    # The operator's Deployment must not select the judge's pods.
    operator = next(o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == "r")
    operator_selector = operator["spec"]["selector"]["matchLabels"].items()
    assert not operator_selector <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_llm_judge_without_an_endpoint_is_refused() -> None:
    result = render("judge.enabled=true")
    assert result.returncode != 0
    assert "judge.scorer llmJudge needs judge.judgeEndpoint" in result.stderr
