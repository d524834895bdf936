"""`llmrollout check`: its options, its exit statuses without a cluster, and what it prints.

Against the real apiserver and Prometheus it runs in tests/e2e/test_metrics_ready.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrollout import cli
from llmrollout.rollout import Preflight, metrics_report
from tests.unit.rollout.windows import spec

ERRORS = 'http_requests_total{model_name="v1",status=~"5.."}'


def test_check_parses_name_namespace_kubeconfig_and_prometheus() -> None:
    args = cli.parser().parse_args(
        ["check", "bot", "-n", "team-a", "--kubeconfig", "/k", "--prometheus", "http://127.0.0.1:9090"]
    )
    assert (args.name, args.namespace, args.kubeconfig, args.prometheus) == (
        "bot",
        "team-a",
        "/k",
        "http://127.0.0.1:9090",
    )
    assert cli.parser().parse_args(["check", "bot"]).prometheus is None


def test_check_help_states_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["check", "--help"])
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 every series found; 1 some missing" in out
    assert "2 could not check" in out


def test_check_without_a_cluster_could_not_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "bot", "--kubeconfig", str(tmp_path / "missing")]) == cli.CHECK_CANNOT == 2
    err = capsys.readouterr().err
    assert err.startswith("llmrollout check: no cluster to talk to"), err


@pytest.mark.parametrize(
    ("changes", "header"),
    [
        ({}, "  preset vllm, variant label model_name"),
        (
            {"metrics__variantFrom": "resource"},
            "  preset vllm, variant label model_name from the OpenTelemetry resource (target_info)",
        ),
    ],
)
def test_check_prints_what_it_asked_then_the_report(changes: dict[str, str], header: str) -> None:
    s = spec(
        slos={"errorRate": {"max": 0.02}},
        metrics__preset="vllm",
        metrics__variantLabel="model_name",
        **changes,
    )
    preflight = Preflight(missing={"v1": {"errors": ERRORS}}, found={"v1": {"requests": "r"}, "v2": {}})
    report = metrics_report(s, preflight, "v1", "v2")
    lines = cli.describe_check("team-a", "bot", s, report)
    assert lines[:2] == [
        f"team-a/bot: series of v1 (serving) and v2 (candidate) in {s.metrics.prometheus.address}",  # type: ignore[union-attr]
        header,
    ]
    assert lines[2:] == report.lines()
    assert f"    missing errors: {ERRORS}" in lines
    assert lines[-1].startswith(
        f"MetricsReady: False: rollout of v2 not started: series missing on v1, which serves now: {ERRORS}."
    )
