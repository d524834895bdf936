"""`llmrollout eval` against stand-in model and judge servers on 127.0.0.1 whose quality is scripted."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.judge.standin import OpenAIStandIn, answering, good, last_user
from llmrollout.cli import main

N = 60


model = answering


def judge(body: dict[str, Any]) -> str:
    prompt = last_user(body)
    reference = prompt.split("Reference answer (may be empty):\n")[1].split("\n")[0]
    answer = prompt.split("Answer to grade:\n")[1].split("\n")[0]
    return json.dumps({"score": 0.9 if answer == reference else 0.2})


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    path = tmp_path / "golden.jsonl"
    lines = [
        json.dumps({"id": f"q{i:02d}", "prompt": f"question {i}", "reference": f"answer {i}"})
        for i in range(N)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def servers() -> Iterator[dict[str, OpenAIStandIn]]:
    with (
        OpenAIStandIn(chat=model(0.95)) as strong,
        OpenAIStandIn(chat=model(0.5)) as weak,
        OpenAIStandIn(chat=judge) as judge_server,
    ):
        yield {"strong": strong, "weak": weak, "judge": judge_server}


def run(args: list[str]) -> int:
    return main(["eval", *args, "--progress", "lines"])


def suite_of(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    return suite


def test_one_endpoint_that_meets_the_bar_exits_0(
    golden: Path, servers: dict[str, OpenAIStandIn], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    args = [str(golden), "--endpoint", servers["strong"].base_url, "--model", "m", "--scorer", "exactMatch"]
    code = run([*args, "--min-score", "0.8", "--junit", str(junit), "--markdown", str(summary)])
    assert code == 0
    suite = suite_of(junit)
    right = sum(good(f"question {i}", 0.95) for i in range(N))
    assert suite.get("tests") == str(N + 1)
    assert suite.get("failures") == str(N - right)
    gate = suite.find("testcase[@name='gate']")
    assert gate is not None and gate.find("failure") is None
    text = summary.read_text()
    assert text.startswith("## llmrollout eval: PASSED")
    assert f"| mean score | {right / N:.3f} |" in text
    assert f"eval: {N}/{N} items" in capsys.readouterr().err


def test_one_endpoint_under_the_bar_exits_1(
    golden: Path, servers: dict[str, OpenAIStandIn], tmp_path: Path
) -> None:
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    args = [str(golden), "--endpoint", servers["weak"].base_url, "--model", "m", "--scorer", "contains"]
    code = run([*args, "--min-score", "0.8", "--junit", str(junit), "--markdown", str(summary)])
    assert code == 1
    gate = suite_of(junit).find("testcase[@name='gate']")
    assert gate is not None
    failure = gate.find("failure")
    assert failure is not None and "< minScore 0.800" in failure.get("message", "")
    text = summary.read_text()
    assert text.startswith("## llmrollout eval: FAILED")
    assert "### Worst items" in text


@pytest.mark.parametrize(("candidate", "code"), [("weak", 1), ("strong", 0)])
def test_candidate_vs_baseline_with_a_judge_and_the_paired_test(
    golden: Path, servers: dict[str, OpenAIStandIn], tmp_path: Path, candidate: str, code: int
) -> None:
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    args = [str(golden), "--endpoint", servers[candidate].base_url, "--model", "m"]
    args += ["--baseline-endpoint", servers["strong"].base_url, "--scorer", "llmJudge"]
    args += ["--judge-endpoint", servers["judge"].base_url, "--judge-model", "j", "--max-drop", "0.05"]
    args += ["--junit", str(junit), "--markdown", str(summary)]
    assert run(args) == code
    suite = suite_of(junit)
    gate = suite.find("testcase[@name='gate']")
    assert gate is not None
    text = summary.read_text()
    assert "`candidate` | `baseline`" in text
    assert f"Scorer endpoint: {2 * N} requests (0 retries, 0 failed)" in text
    if code == 1:
        failure = gate.find("failure")
        assert failure is not None and "exceeds maxDropVsStable 0.050" in failure.get("message", "")
        regressed = [
            c for c in suite.findall("testcase") if c.find("failure") is not None and c.get("name") != "gate"
        ]
        assert regressed, "items the candidate lost are failures"
    else:
        assert gate.find("failure") is None
        assert suite.get("failures") == "0"


def test_bar_progress_on_a_terminal(
    golden: Path, servers: dict[str, OpenAIStandIn], capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(golden), "--endpoint", servers["strong"].base_url, "--model", "m", "--scorer", "exactMatch"]
    assert main(["eval", *args, "--min-score", "0.5", "--progress", "bar"]) == 0
    captured = capsys.readouterr()
    assert f"\reval [{'#' * 30}] {N}/{N}\n" in captured.err
    assert captured.out.startswith("## llmrollout eval: PASSED")  # no --markdown: stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scorer", "bleu", "--min-score", "0.5"], "unknown scorer 'bleu'"),
        (["--scorer", "llmJudge", "--min-score", "0.5"], "needs a judge endpoint"),
        (["--scorer", "exactMatch"], "give --min-score"),
        (["--scorer", "exactMatch", "--max-drop", "0.1"], "give --baseline-endpoint"),
        (["--scorer", "exactMatch", "--min-score", "0.5", "--api-key-env", "NO_SUCH_VAR_X"], "is not set"),
    ],
)
def test_misconfiguration_exits_2(
    golden: Path,
    servers: dict[str, OpenAIStandIn],
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run([str(golden), "--endpoint", servers["strong"].base_url, "--model", "m", *extra]) == 2
    assert message in capsys.readouterr().err


def test_a_broken_golden_set_or_missing_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "prompt": "x", "reference": "y"}\n{"id": "a"}\n')
    base = [
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        "--scorer",
        "exactMatch",
        "--min-score",
        "0.5",
    ]
    assert run([str(bad), *base]) == 2
    assert "line 2" in capsys.readouterr().err
    assert run([str(tmp_path / "missing.jsonl"), *base]) == 2


def test_an_unreachable_endpoint_exits_2(golden: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(golden), "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--scorer", "exactMatch"]
    assert run([*args, "--min-score", "0.5", "--timeout", "1"]) == 2
    assert "no answer from http://127.0.0.1:9/v1" in capsys.readouterr().err


def test_missing_required_arguments_exit_2(golden: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["eval", str(golden), "--model", "m", "--scorer", "exactMatch"])
    assert exited.value.code == 2


def test_a_judge_outage_is_inconclusive_and_exits_2(
    golden: Path, servers: dict[str, OpenAIStandIn], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with OpenAIStandIn(chat=lambda _: {"error": "model not loaded"}) as broken_judge:
        args = [str(golden), "--endpoint", servers["strong"].base_url, "--model", "m", "--scorer", "llmJudge"]
        args += ["--judge-endpoint", broken_judge.base_url, "--judge-model", "j", "--min-score", "0.5"]
        assert run([*args, "--junit", str(tmp_path / "j.xml")]) == 2
    assert "GoldenSetInconclusive: " in capsys.readouterr().err
    gate = suite_of(tmp_path / "j.xml").find("testcase[@name='gate']")
    assert gate is not None and gate.find("failure") is not None
