"""The `llmrollout` command: every command parses and has working --help, and its messages.

Commands that talk to the cluster are exercised against the real apiserver in tests/e2e/test_cli.py;
here, the parts that need none: parsing, help, the status rendering, the CRD, and the errors a user
sees when there is no cluster to talk to.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmrollout import cli
from llmrollout.api import crd

REPO = Path(__file__).resolve().parents[3]
ACTIONS = ("status", "promote", "abort", "failback", "pause", "resume")


def subcommands() -> list[str]:
    root = cli.parser()
    choices = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction)).choices
    return sorted(choices)


def test_every_command_is_covered_here() -> None:
    # A new command must be added to the tables below, or this fails.
    # eval and judge have their own tests (tests/unit/eval/test_eval_cli.py, test_eval_judge_cli.py),
    # check its own (test_cli_check.py).
    assert subcommands() == sorted(["run", "crd", "eval", "judge", "check", *ACTIONS])


@pytest.mark.parametrize("argv", [[], *([name] for name in subcommands())], ids=" ".join)
def test_help_exits_zero_and_describes(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: llmrollout"), out
    if argv and argv[0] in cli.COMMANDS:
        assert cli.COMMANDS[argv[0]][0] in out


def test_root_help_lists_every_command_with_literal_percent(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in subcommands():
        assert name in out
    assert "roll the candidate back to 0% now" in out


@pytest.mark.parametrize("command", ACTIONS)
def test_action_commands_parse_name_namespace_and_kubeconfig(command: str) -> None:
    args = cli.parser().parse_args([command, "support-bot", "-n", "team-a", "--kubeconfig", "/k"])
    assert (args.command, args.name, args.namespace, args.kubeconfig) == (
        command,
        "support-bot",
        "team-a",
        "/k",
    )
    defaults = cli.parser().parse_args([command, "bot"])
    assert (defaults.namespace, defaults.kubeconfig) == ("default", None)


@pytest.mark.parametrize("command", ACTIONS)
def test_action_commands_need_a_name(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([command])
    assert exited.value.code == 2
    assert "the following arguments are required: name" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ("promote", "promotion requested"),
        ("abort", "abort requested"),
        ("failback", "failback requested"),
        ("pause", "paused"),
        ("resume", "resumed"),
    ],
)
def test_every_action_has_a_confirmation(command: str, said: str) -> None:
    assert cli.COMMANDS[command][1] == said


def test_run_without_namespaces_says_what_to_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run"]) == 2
    assert "pass --all-namespaces or at least one --namespace" in capsys.readouterr().err


def test_run_parses_its_options() -> None:
    args = cli.parser().parse_args(["run", "-n", "a", "-n", "b", "--liveness", "http://0.0.0.0:8080/healthz"])
    assert (args.namespace, args.all_namespaces, args.liveness) == (
        ["a", "b"],
        False,
        "http://0.0.0.0:8080/healthz",
    )


def test_run_leader_election_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    args = cli.parser().parse_args(["run", "-A", "--leader-election", "--lease-duration", "9"])
    assert (args.leader_election, args.lease_namespace, args.lease_name, args.lease_duration) == (
        True,
        "ops",
        "llmrollout",
        9,
    )
    plain = cli.parser().parse_args(["run", "-A", "--standalone", "--lease-namespace", "x"])
    assert (plain.leader_election, plain.lease_namespace) == (False, "x")


def test_crd_prints_the_committed_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crd"]) == 0
    assert capsys.readouterr().out == (REPO / "crds/llmdeployments.llmrollout.io.yaml").read_text()


def test_crd_with_a_lower_floor_changes_only_the_floor(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crd", "--min-interval", "1s"]) == 0
    lowered = capsys.readouterr().out
    assert "duration('1s')" in lowered and "duration('10s')" not in lowered
    restored = lowered.replace("'1s'", "'10s'").replace("least 1s", "least 10s")
    assert yaml.safe_load(restored) == yaml.safe_load(crd.render())


def test_crd_refuses_a_floor_that_is_not_a_duration(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crd", "--min-interval", "ten"]) == 2
    assert "--min-interval" in capsys.readouterr().err


def test_no_cluster_is_a_message_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["promote", "bot", "--kubeconfig", str(tmp_path / "missing")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("llmrollout promote: no cluster to talk to"), err
    assert "Traceback" not in err


def test_unreachable_cluster_is_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, then closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    assert cli.main(["status", "bot", "--kubeconfig", str(kubeconfig)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("llmrollout status: Kubernetes API unreachable"), err


FULL: dict[str, Any] = {
    "status": {
        "phase": "FallbackActive",
        "stable": "v1",
        "candidate": "v2",
        "candidateWeight": 25,
        "step": 1,
        "weights": {"v1": 5, "v2": 0, "hosted": 95},
        "fallback": {
            "failed": "v1",
            "active": "hosted",
            "since": "2026-01-01T00:00:00Z",
            "reason": "errorRate 0.4 > 0.02",
            "healthyIntervals": 2,
        },
        "plan": {"weight": 50, "minutesLeft": 56.0, "neededHorizon": "1h54m", "neededMinutes": 113.2},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Reconciled", "message": "v1 is stable"}
        ],
        "analysis": {"results": [{"verdict": "fail", "message": "errorRate 0.4 > 0.02"}]},
        "history": [
            {"time": f"2026-01-01T00:00:0{i}Z", "reason": f"R{i}", "message": f"m{i}"} for i in range(7)
        ],
    }
}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            {},
            [
                "ns/bot: Pending",
                "  stable:    -",
                "  candidate: - at 0% (step 0)",
                "  weights:   -",
            ],
        ),
        (
            {"status": None},
            ["ns/bot: Pending", "  stable:    -", "  candidate: - at 0% (step 0)", "  weights:   -"],
        ),
        (
            FULL,
            [
                "ns/bot: FallbackActive",
                "  stable:    v1",
                "  candidate: v2 at 25% (step 1)",
                "  fallback:  active: hosted carries v1's traffic since 2026-01-01T00:00:00Z"
                " (errorRate 0.4 > 0.02); 2 healthy intervals so far;"
                " `llmrollout failback` forces the return",
                "  weights:   v1 5%, v2 0%, hosted 95%",
                "  plan:      56 min left to the horizon;"
                " a horizon of 1h54m keeps its rule within the error rates",
                "  Ready=True Reconciled: v1 is stable",
                "  fail         errorRate 0.4 > 0.02",
                # Only the last five decisions.
                *(f"  2026-01-01T00:00:0{i}Z R{i}: m{i}" for i in range(2, 7)),
            ],
        ),
        (
            {"status": {"phase": "Progressing", "plan": {"weight": 50, "minutesLeft": 12.5, "slos": {}}}},
            [
                "ns/bot: Progressing",
                "  stable:    -",
                "  candidate: - at 0% (step 0)",
                "  weights:   -",
                "  plan:      12.5 min left to the horizon",
            ],
        ),
    ],
    ids=["no-status", "null-status", "fallback", "plan-without-forecast"],
)
def test_describe_status(obj: dict[str, Any], expected: list[str]) -> None:
    assert cli.describe_status("ns", "bot", obj) == expected
