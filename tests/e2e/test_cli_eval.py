"""`llmrollout eval`, the command CI runs, against the e2e harness's simulated model servers.

The real command in a process of its own asks the servers (harness/modelserver.py, answers carrying
their scripted quality) every golden-set item and has a stand-in judge model grade them
(harness/judge.py). Its exit code says pass (0) or fail (1); its JUnit XML is parsed here, and its
Markdown summary read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.judge.standin import OpenAIStandIn
from tests.e2e.cluster import REPO
from tests.e2e.harness.judge import grade
from tests.e2e.harness.modelserver import Behaviour, ModelServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ITEMS = 40


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """Base URLs (…/v1): a good model, a regressed one, and the judge model."""
    good = ModelServer("good", "model-good", Behaviour(), seed=1, eval_metrics=False)
    bad = ModelServer("bad", "model-bad", Behaviour(quality_mean=0.55), seed=2, eval_metrics=False)
    with good, bad, OpenAIStandIn(chat=grade, record=False) as judge:
        yield {"good": good.url + "/v1", "bad": bad.url + "/v1", "judge": judge.base_url}


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("golden") / "golden.jsonl"
    items = [{"id": f"q{i:02d}", "prompt": f"How do I do task {i}?"} for i in range(ITEMS)]
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def llmrollout_eval(
    golden: Path, servers: dict[str, str], out: Path, endpoint: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    command = [
        *(sys.executable, "-m", "llmrollout.cli", "eval", str(golden), "--model", "sim"),
        *("--endpoint", servers[endpoint], "--scorer", "llmJudge"),
        *("--judge-endpoint", servers["judge"], "--judge-model", "sim-judge", "--pass-threshold", "0.7"),
        *("--junit", str(out / "junit.xml"), "--markdown", str(out / "summary.md")),
        *extra,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240, check=False)


def gate_of(junit: Path) -> tuple[ET.Element, ET.Element]:
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    gate = suite.find("testcase[@name='gate']")
    assert gate is not None
    return suite, gate


@pytest.mark.parametrize(
    ("endpoint", "extra", "code", "heading"),
    [
        ("good", ("--min-score", "0.8"), 0, "PASSED"),
        ("bad", ("--min-score", "0.8"), 1, "FAILED"),
        # Candidate against a baseline, by the paired test: the regressed model loses to the good one.
        ("bad", ("--baseline-endpoint", "good", "--max-drop", "0.1"), 1, "FAILED"),
        ("good", ("--baseline-endpoint", "good", "--max-drop", "0.1"), 0, "PASSED"),
    ],
    ids=["one-endpoint-pass", "one-endpoint-fail", "paired-fail", "paired-pass"],
)
def test_llmrollout_eval_exits_by_the_verdict_and_writes_junit_and_markdown(
    golden: Path,
    servers: dict[str, str],
    tmp_path: Path,
    endpoint: str,
    extra: tuple[str, ...],
    code: int,
    heading: str,
) -> None:
    extra = tuple(servers["good"] if arg == "good" else arg for arg in extra)  # the baseline's URL
    result = llmrollout_eval(golden, servers, tmp_path, endpoint, *extra)
    assert result.returncode == code, result.stderr
    suite, gate = gate_of(tmp_path / "junit.xml")
    cases = suite.findall("testcase")
    assert len(cases) == ITEMS + 1 and suite.get("tests") == str(ITEMS + 1)
    assert (gate.find("failure") is None) == (code == 0), ET.tostring(gate, encoding="unicode")
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith(f"## llmrollout eval: {heading}")
    assert "| mean score |" in summary
    # Plain progress lines in CI (no terminal here), and the decision on stderr.
    assert f"eval: {ITEMS}/{ITEMS} items" in result.stderr
    assert "llmrollout eval: " in result.stderr.splitlines()[-1]
