"""Invalid LLMDeployments are refused by the real apiserver, with a message naming the field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import REPO, Kube

Manifest = dict[str, Any]


def basic() -> Manifest:
    manifest: Manifest = yaml.safe_load((REPO / "examples/basic.yaml").read_text())
    return manifest


def edit(change: Callable[[dict[str, Any]], object]) -> Manifest:
    manifest = basic()
    change(manifest["spec"])
    return manifest


def set_in(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return change


def delete(path: str) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        del node[last]

    return change


INVALID = {
    "unknown-stable": (set_in("stable", "v9"), ["spec.stable", "stable must name one of spec.variants"]),
    "unknown-candidate": (set_in("candidate", "v7"), ["spec.candidate", "candidate must name one of"]),
    "candidate-is-stable": (set_in("candidate", "v1"), ["spec.candidate", "must differ from stable"]),
    "unknown-fallback": (set_in("fallbacks", ["gone"]), ["spec.fallbacks", "every fallback must name"]),
    "duplicate-variant-names": (set_in("variants.1.name", "v1"), ["spec.variants[1]", "Duplicate value"]),
    "shared-backend": (
        set_in("variants.1.backendRef", {"name": "bot-v1", "port": 8000}),
        ["spec.variants", "its own backendRef"],
    ),
    "non-increasing-steps": (
        set_in("strategy.steps", [5, 50, 25]),
        ["spec.strategy.steps", "strictly increasing"],
    ),
    "repeated-step": (set_in("strategy.steps", [5, 25, 25]), ["spec.strategy.steps[2]", "Duplicate value"]),
    "weight-over-100": (
        set_in("strategy.steps", [5, 50, 150]),
        ["spec.strategy.steps[2]", "less than or equal to 100"],
    ),
    "weight-zero": (
        set_in("strategy.steps", [0, 50]),
        ["spec.strategy.steps[0]", "greater than or equal to 1"],
    ),
    "bad-interval": (set_in("strategy.interval", "1 minute"), ["spec.strategy.interval", "should match"]),
    "bad-ttft-duration": (set_in("slos.ttft.p95", "fast"), ["spec.slos.ttft.p95", "should match"]),
    "missing-backend-ref": (
        delete("variants.0.backendRef"),
        ["spec.variants[0].backendRef", "Required value"],
    ),
    "bad-port": (set_in("variants.0.backendRef.port", 70000), ["spec.variants[0].backendRef.port", "65535"]),
    "bad-dns-label": (set_in("variants.2.name", "Hosted_GPT"), ["spec.variants[2].name", "should match"]),
    "negative-threshold": (
        set_in("slos.errorRate.max", -0.1),
        ["spec.slos.errorRate.max", "greater than or equal"],
    ),
    "score-above-one": (
        set_in("slos.quality.minScore", 1.5),
        ["spec.slos.quality.minScore", "less than or equal"],
    ),
    "empty-quality": (
        set_in("slos.quality", {}),
        ["spec.slos.quality", "set minScore, maxDropVsStable or both"],
    ),
    "feedback-bound-zero": (
        set_in("slos.feedback", {"maxDownRateVsStable": 0}),
        ["spec.slos.feedback.maxDownRateVsStable", "greater than 0"],
    ),
    "missing-route": (
        delete("traffic.httpRouteRef"),
        ["spec.traffic.httpRouteRef", "required when router is"],
    ),
    "unknown-router": (set_in("traffic.router", "nginx"), ["spec.traffic.router", "Unsupported value"]),
    "bad-prometheus-url": (
        set_in("metrics.prometheus.address", "prometheus:9090"),
        ["spec.metrics.prometheus.address", "should match"],
    ),
    "unknown-preset": (set_in("metrics.preset", "datadog"), ["spec.metrics.preset", "Unsupported value"]),
    "false-rollback-rate-zero": (
        set_in("analysis.falseRollbackRate", 0),
        ["spec.analysis.falseRollbackRate", "greater than 0"],
    ),
    "no-variants": (set_in("variants", []), ["spec.variants", "at least 1 items"]),
    # The test cluster's CRD has a 1s floor (the committed one 10s; tests/unit/api/test_api_bounds.py).
    "zero-interval": (set_in("strategy.interval", "0s"), ["spec.strategy.interval", "must be at least"]),
    "sub-floor-look-interval": (
        set_in("analysis.lookInterval", "500ms"),
        ["spec.analysis.lookInterval", "must be at least"],
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_spec_is_refused_naming_the_field(kube: Kube, namespace: str, case: str) -> None:
    change, expected = INVALID[case]
    result = kube.apply(edit(change), namespace)
    assert result.returncode != 0, f"{case} was accepted:\n{result.stdout}"
    for fragment in expected:
        assert fragment in result.stderr, f"{case}: {fragment!r} not in:\n{result.stderr}"
    assert kube.kubectl("get", "llmd", "-n", namespace, "-o", "name").stdout == ""


def test_example_is_accepted(kube: Kube, namespace: str) -> None:
    result = kube.apply(basic(), namespace)
    assert result.returncode == 0, result.stderr


def test_refused_update_leaves_the_running_object_alone(kube: Kube, namespace: str, tmp_path: Path) -> None:
    assert kube.apply(basic(), namespace).returncode == 0
    before = kube.get("llmd", "support-bot", namespace)
    broken = copy.deepcopy(basic())
    broken["spec"]["strategy"]["steps"] = [50, 5]
    result = kube.apply(broken, namespace)
    assert result.returncode != 0 and "spec.strategy.steps" in result.stderr
    after = kube.get("llmd", "support-bot", namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    (tmp_path / "after.json").write_text(json.dumps(after))
