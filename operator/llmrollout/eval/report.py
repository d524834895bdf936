"""What a run says to people and CI systems: a Markdown summary and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from llmrollout.analysis.paired import GateDecision
from llmrollout.eval._openai import Metered
from llmrollout.eval.engine import ItemResult, RunResult


@dataclass(frozen=True)
class Report:
    golden_set: str
    scorer: str
    decision: GateDecision
    candidate: RunResult
    baseline: RunResult | None = None
    seconds: float = 0.0
    scorer_usage: Metered | None = None  # the judge's or embeddings endpoint's, summed


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:160]


def markdown(report: Report) -> str:
    decision = report.decision
    runs = [report.candidate] + ([report.baseline] if report.baseline else [])
    lines = [
        f"## llmrollout eval: {'PASSED' if decision.passed else 'FAILED'}",
        "",
        f"Golden set `{report.golden_set}`, {len(report.candidate.items)} items, scorer `{report.scorer}`.",
        "",
        "| | " + " | ".join(f"`{r.target}`" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
        "| mean score | " + " | ".join(_score(r.mean_score) for r in runs) + " |",
        "| pass rate | " + " | ".join(_score(r.pass_rate) for r in runs) + " |",
    ]
    for verdict in ("pass", "fail", "unparseable", "error", "skipped"):
        if any(r.counts.get(verdict) for r in runs):
            lines.append(f"| {verdict} | " + " | ".join(str(r.counts.get(verdict, 0)) for r in runs) + " |")
    lines.append(
        "| tokens in / out | "
        + " | ".join(f"{r.usage.prompt_tokens} / {r.usage.completion_tokens}" for r in runs)
        + " |"
    )
    lines.append("| cost (USD) | " + " | ".join(f"{r.cost_usd:.4f}" for r in runs) + " |")
    if report.scorer_usage is not None and report.scorer_usage.requests:
        used = report.scorer_usage
        lines.append(
            f"\nScorer endpoint: {used.requests} requests ({used.retries} retries, {used.failures} failed),"
            f" {used.usage.prompt_tokens} / {used.usage.completion_tokens} tokens in / out."
        )
    lines += ["", f"**{decision.reason}**: {decision.message}"]
    if report.candidate.stopped:
        lines += ["", f"Stopped early: {report.candidate.stopped}."]
    if decision.worst_items:
        by_id = {r.item_id: r for r in report.candidate.items}
        base = {r.item_id: r for r in report.baseline.items} if report.baseline else {}
        lines += ["", "### Worst items", ""]
        header = "| item | candidate |" + (" baseline |" if base else "") + " detail |"
        lines += [header, "|---|---|" + ("---|" if base else "") + "---|"]
        for item_id in decision.worst_items:
            item = by_id[item_id]
            row = f"| `{item_id}` | {item.verdict} {_score(item.score)} |"
            if base:
                row += f" {base[item_id].verdict} {_score(base[item_id].score)} |"
            lines.append(row + f" {_cell(item.detail)} |")
    return "\n".join(lines) + "\n"


def _item_case(suite: ET.Element, item: ItemResult, baseline: ItemResult | None) -> None:
    case = ET.SubElement(suite, "testcase", classname="golden-set.items", name=item.item_id)
    if item.latency_s is not None:
        case.set("time", f"{item.latency_s:.3f}")
    if item.verdict == "skipped":
        ET.SubElement(case, "skipped", message=item.detail)
    elif item.verdict in ("error", "unparseable"):
        ET.SubElement(case, "error", message=f"{item.verdict}: {item.detail}"[:500])
    elif baseline is not None and item.gate_score < baseline.gate_score:
        message = f"scored {_score(item.score)}, baseline {_score(baseline.score)}"
        ET.SubElement(case, "failure", message=message).text = item.detail
    elif baseline is None and item.verdict == "fail":
        ET.SubElement(case, "failure", message=f"scored {_score(item.score)}").text = item.detail


def junit(report: Report) -> str:
    """JUnit XML: one test case for the gate, one per item (failure: the candidate failed it, or in a
    paired run scored under the baseline; error: no answer or an unparseable verdict)."""
    root = ET.Element("testsuites", name="llmrollout eval")
    suite = ET.SubElement(root, "testsuite", name=f"golden-set {report.golden_set}")
    gate = ET.SubElement(suite, "testcase", classname="golden-set", name="gate")
    gate.set("time", f"{report.seconds:.3f}")
    if not report.decision.passed:
        ET.SubElement(gate, "failure", message=report.decision.message[:500]).text = report.decision.message
    baselines = {r.item_id: r for r in report.baseline.items} if report.baseline else {}
    for item in report.candidate.items:
        _item_case(suite, item, baselines.get(item.item_id))
    cases = suite.findall("testcase")
    counts = {
        "tests": len(cases),
        "failures": sum(c.find("failure") is not None for c in cases),
        "errors": sum(c.find("error") is not None for c in cases),
        "skipped": sum(c.find("skipped") is not None for c in cases),
    }
    for element in (root, suite):
        for key, value in counts.items():
            element.set(key, str(value))
        element.set("time", f"{report.seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
