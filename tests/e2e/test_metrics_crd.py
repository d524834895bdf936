"""The metrics spec's rules in the real apiserver: a plain Prometheus URL, no variant label in labels."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.cluster import Kube
from tests.e2e.test_crd_validation import edit, set_in

INVALID = {
    "address-with-query": (
        set_in("metrics.prometheus.address", "http://prometheus:9090/?query=up"),
        ["spec.metrics.prometheus.address", "should match"],
    ),
    "address-with-fragment": (
        set_in("metrics.prometheus.address", "http://prometheus:9090/#x"),
        ["spec.metrics.prometheus.address", "should match"],
    ),
    "address-with-credentials": (
        set_in("metrics.prometheus.address", "http://admin:secret@prometheus:9090"),
        ["spec.metrics.prometheus.address", "should match"],
    ),
    "zero-scrape-interval": (
        set_in("metrics.prometheus.scrapeInterval", "0s"),
        ["spec.metrics.prometheus.scrapeInterval", "scrapeInterval must be positive"],
    ),
    "labels-name-the-variant-label": (
        set_in("metrics.labels", {"variant": "v1"}),
        ["spec.metrics.labels", "must not set the variant label"],
    ),
    "label-value-10kb": (
        set_in("metrics.labels", {"namespace": "x" * 10240}),
        ["spec.metrics.labels.namespace", "Too long"],
    ),
    "auth-with-no-scheme": (
        set_in("metrics.prometheus.auth", {}),
        ["spec.metrics.prometheus.auth", "set exactly one of basicAuthSecretRef or bearerTokenSecretRef"],
    ),
    "auth-with-two-schemes": (
        set_in(
            "metrics.prometheus.auth",
            {"basicAuthSecretRef": {"name": "a"}, "bearerTokenSecretRef": {"name": "b", "key": "token"}},
        ),
        ["spec.metrics.prometheus.auth", "set exactly one of basicAuthSecretRef or bearerTokenSecretRef"],
    ),
    "bearer-token-without-key": (
        set_in("metrics.prometheus.auth", {"bearerTokenSecretRef": {"name": "b"}}),
        ["spec.metrics.prometheus.auth.bearerTokenSecretRef.key", "Required value"],
    ),
    "labels-name-the-preset-default": (
        lambda spec: spec["metrics"].update(
            {"preset": "litellm", "labels": {"requested_model": "x"}, "variantLabel": None}
        ),
        ["spec.metrics.labels", "must not set the variant label"],
    ),
}


def _without_nulls(manifest: dict[str, Any]) -> dict[str, Any]:
    metrics = manifest["spec"]["metrics"]
    for key in [k for k, v in metrics.items() if v is None]:
        del metrics[key]
    return manifest


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_metrics_are_refused_naming_the_field(kube: Kube, namespace: str, case: str) -> None:
    change, expected = INVALID[case]
    result = kube.apply(_without_nulls(edit(change)), namespace)
    assert result.returncode != 0, f"{case} was accepted:\n{result.stdout}"
    for fragment in expected:
        assert fragment in result.stderr, f"{case}: {fragment!r} not in:\n{result.stderr}"


def test_new_metrics_fields_are_accepted(kube: Kube, namespace: str) -> None:
    manifest = edit(
        lambda spec: spec["metrics"].update(
            {
                "prometheus": {
                    "address": "https://prometheus.monitoring:9090/prom",
                    "scrapeInterval": "15s",
                    "auth": {"bearerTokenSecretRef": {"name": "prom-token", "key": "token"}},
                },
                "preset": "sglang",
                "variantFrom": "resource",
                "labels": {"requested_model": "x"},  # only litellm's default variant label
            }
        )
    )
    result = kube.apply(manifest, namespace)
    assert result.returncode == 0, result.stderr
