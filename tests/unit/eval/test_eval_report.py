"""Markdown and JUnit from results, by table: no I/O."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from llmrollout.analysis.paired import PairedItem, golden_set_gate
from llmrollout.eval.engine import ItemResult, RunResult
from llmrollout.eval.report import Report, junit, markdown

CANDIDATE = RunResult(
    "candidate",
    (
        ItemResult("a", "pass", 1.0, "4", latency_s=0.2),
        ItemResult("b", "fail", 0.0, "5", "expected '4' | not 5"),
        ItemResult("c", "error", None, None, "candidate did not answer: HTTP 503"),
        ItemResult("d", "unparseable", None, "x", "judge said: 'hmm'"),
        ItemResult("e", "skipped", None, None, "budget spent before this item started"),
    ),
    stopped="cost budget $1 spent ($1.0100)",
    cost_usd=1.01,
)
BASELINE = RunResult(
    "baseline",
    (*(ItemResult(i, "pass", 1.0, "4") for i in "abcd"), ItemResult("e", "skipped", None)),
)


def report() -> Report:
    items = [PairedItem(c.item_id, c.gate_score, 1.0) for c in CANDIDATE.items if c.verdict != "skipped"]
    decision = golden_set_gate(items, min_score=0.8, max_drop_vs_stable=0.0, false_rollback_rate=0.3)
    return Report("golden.jsonl", "exactMatch", decision, CANDIDATE, BASELINE, 1.5)


def test_junit_counts_and_cases() -> None:
    root = ET.fromstring(junit(report()))
    suite = root.find("testsuite")
    assert suite is not None
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "6",
        "failures": "2",  # the gate and item b (scored under the baseline)
        "errors": "2",  # c (no answer) and d (unparseable)
        "skipped": "1",
    }
    assert root.get("failures") == "2"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["a"].get("time") == "0.200" and len(cases["a"]) == 0
    failure = cases["b"].find("failure")
    assert failure is not None and failure.get("message") == "scored 0.000, baseline 1.000"
    error = cases["d"].find("error")
    assert error is not None and error.get("message", "").startswith("unparseable: ")
    gate = cases["gate"].find("failure")
    assert gate is not None and "score 0.250 < minScore 0.800" in gate.get("message", "")


def test_markdown_summary() -> None:
    text = markdown(report())
    assert text.startswith("## llmrollout eval: FAILED\n")
    assert "| | `candidate` | `baseline` |" in text
    assert "| mean score | 0.250 | 1.000 |" in text
    assert "| error | 1 | 0 |" in text and "| skipped | 1 | 1 |" in text
    assert "Stopped early: cost budget $1 spent ($1.0100)." in text
    assert "**GoldenSetFailed**: golden set score 0.250" in text
    # Item details are escaped for the table.
    assert "| `b` | fail 0.000 | pass 1.000 | expected '4' \\| not 5 |" in text
