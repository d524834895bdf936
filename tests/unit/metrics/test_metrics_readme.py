"""The README's Metrics snippets are what the code accepts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from llmrollout.api.spec import Metrics
from llmrollout.metrics import PRESETS

README = Path(__file__).resolve().parents[3] / "README.md"


def metrics_section() -> str:
    text = README.read_text()
    start = text.index("### Metrics\n")
    return text[start : text.index("\n## ", start)]


def yaml_blocks() -> list[Any]:
    blocks = re.findall(r"```yaml\n(.*?)```", metrics_section(), re.S)
    return [yaml.safe_load(re.sub(r"^ {2}", "", b, flags=re.M)) for b in blocks]


def test_the_spec_snippet_is_a_valid_metrics_spec() -> None:
    spec = Metrics.model_validate(yaml_blocks()[0]["metrics"])
    assert spec.preset in PRESETS and spec.prometheus.scrape_interval.total_seconds() == 30


def test_the_auth_snippet_is_a_valid_metrics_spec() -> None:
    spec = Metrics.model_validate(yaml_blocks()[1]["metrics"])
    assert spec.prometheus.auth is not None and spec.prometheus.auth.basic_auth_secret_ref is not None


def test_the_podmonitor_puts_the_pod_label_where_the_presets_look() -> None:
    monitor = next(b for b in yaml_blocks() if b.get("kind") == "PodMonitor")
    assert monitor["kind"] == "PodMonitor"
    (relabeling,) = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
    # Kubernetes service discovery turns the pod label llmrollout.io/variant into this meta label.
    pod_label = re.sub(r"[^a-zA-Z0-9_]", "_", "llmrollout.io/variant")
    assert relabeling["sourceLabels"] == [f"__meta_kubernetes_pod_label_{pod_label}"]
    assert relabeling["targetLabel"] == PRESETS["vllm"].variant_label == PRESETS["sglang"].variant_label


def test_the_litellm_config_is_the_one_the_proxy_e2e_runs() -> None:
    from tests.e2e.harness.litellm_proxy import LiteLLMProxy

    readme = next(b for b in yaml_blocks() if "model_list" in b)
    ours = LiteLLMProxy({"v1": "http://bot-v1:8000", "v2": "http://bot-v2:8000"}, Path("/unused")).config()
    settings = dict(ours["litellm_settings"])  # type: ignore[call-overload]
    settings.pop("num_retries")  # the test's own: a retried 5xx would hide the server's errors
    assert readme["litellm_settings"] == settings
    # One alias per variant, named after it: the litellm preset's default label, requested_model.
    assert [m["model_name"] for m in readme["model_list"]] == ["v1", "v2"]
    assert [m["model_name"] for m in ours["model_list"]] == ["v1", "v2"]  # type: ignore[attr-defined]
    assert PRESETS["litellm"].variant_label == "requested_model"
    for model in readme["model_list"]:
        assert model["litellm_params"]["model"].startswith("openai/")
        assert model["litellm_params"]["api_base"] == f"http://bot-{model['model_name']}:8000/v1"
