"""spec.metrics: what is accepted, and the defaults that depend on the preset."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pydantic
import pytest

from llmrollout.api.spec import Metrics
from llmrollout.metrics import PRESETS


def metrics(**fields: Any) -> Metrics:
    return Metrics.model_validate({"prometheus": {"address": "http://prometheus:9090"}, **fields})


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("http://prometheus.monitoring:9090", True),
        ("https://prom.example.com/prometheus/", True),
        ("http://10.0.0.1:9090/a/b", True),
        ("prometheus:9090", False),
        ("http://prometheus:9090/?query=up", False),
        ("http://prometheus:9090/api#x", False),
        ("http://user:pass@prometheus:9090", False),
        ("http://token@prometheus:9090", False),
        ("http://prom etheus:9090", False),
        ("ftp://prometheus", False),
    ],
)
def test_prometheus_address_is_a_plain_base_url(address: str, ok: bool) -> None:
    spec = {"prometheus": {"address": address}}
    if ok:
        assert Metrics.model_validate(spec).prometheus.address == address
    else:
        with pytest.raises(pydantic.ValidationError, match="address"):
            Metrics.model_validate(spec)


@pytest.mark.parametrize(
    ("fields", "label"),
    [
        ({}, "variant"),
        ({"preset": "litellm"}, "requested_model"),
        ({"preset": "litellm", "variantLabel": "metadata_prompt_version"}, "metadata_prompt_version"),
        ({"preset": "vllm", "variantLabel": "model_name"}, "model_name"),
        ({"preset": "sglang"}, "variant"),
    ],
)
def test_variant_label_defaults_per_preset(fields: dict[str, Any], label: str) -> None:
    spec = metrics(**fields)
    assert spec.effective_variant_label == label
    if "variantLabel" not in fields:
        assert spec.effective_variant_label == PRESETS[spec.preset].variant_label


@pytest.mark.parametrize(
    "fields",
    [
        {"labels": {"variant": "v1"}},
        {"preset": "litellm", "labels": {"requested_model": "x"}},
        {"variantLabel": "model_name", "labels": {"model_name": "x"}},
    ],
)
def test_labels_must_not_set_the_variant_label(fields: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match="must not set the variant label"):
        metrics(**fields)


def test_scrape_interval() -> None:
    assert metrics().prometheus.scrape_interval == timedelta(minutes=1)  # Prometheus's own default
    spec = Metrics.model_validate({"prometheus": {"address": "http://p:9090", "scrapeInterval": "15s"}})
    assert spec.prometheus.scrape_interval == timedelta(seconds=15)
    with pytest.raises(pydantic.ValidationError, match="positive"):
        Metrics.model_validate({"prometheus": {"address": "http://p:9090", "scrapeInterval": "0s"}})


def test_variant_from() -> None:
    assert metrics().variant_from == "label"
    assert metrics(variantFrom="resource").variant_from == "resource"
    with pytest.raises(pydantic.ValidationError):
        metrics(variantFrom="annotation")
