"""The chart's judge component renders as configured (helm template, no cluster).

Uses the helm binary `make setup` builds into the cache (hack/versions.env names its version); without
it the test fails, saying so.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.cluster import built_helm

REPO = Path(__file__).resolve().parents[3]


def render(*sets: str) -> subprocess.CompletedProcess[str]:
    helm = built_helm()
    assert helm.exists(), f"no helm at {helm}: run `make setup` (it builds the cached binaries)"
    args = [str(helm), "template", "r", str(REPO / "charts/llmrollout"), "--namespace", "llm"]
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
