"""`llmrollout eval` (golden sets in CI) and `llmrollout judge` (the online evaluator)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

from llmrollout.analysis.paired import GateDecision, PairedItem, golden_set_gate, threshold_gate
from llmrollout.eval._openai import EndpointError, Meter, Metered, OpenAIClient, Pricing
from llmrollout.eval._types import Usage
from llmrollout.eval.engine import Budget, Evaluator, RunResult, Target
from llmrollout.eval.gate import paired_items
from llmrollout.eval.golden import GoldenSetError, load_golden_set
from llmrollout.eval.report import Report, junit, markdown
from llmrollout.eval.scorers.base import UnknownScorerError
from llmrollout.eval.scorers.factory import SCORERS, ScorerConfig, scorer_for

PASSED, FAILED, MISCONFIGURED = 0, 1, 2


class MisconfiguredError(Exception):
    pass


def add_commands(commands: Any) -> None:
    """Register `eval` and `judge` on the `llmrollout` subparsers."""
    _add_eval(commands)
    from llmrollout.eval.judge.cli import add_judge

    add_judge(commands)


def add_scorer_arguments(parser: argparse.ArgumentParser) -> None:
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--scorer", required=True, help=f"one of {', '.join(SCORERS)}")
    scoring.add_argument("--judge-endpoint", metavar="URL", help="judge base URL, e.g. http://judge:8000/v1")
    scoring.add_argument("--judge-model", metavar="NAME")
    scoring.add_argument("--rubric-file", type=Path, help="judge prompt template ({question} {answer} ...)")
    scoring.add_argument("--pass-threshold", type=float, default=0.5, help="judge score that passes")
    scoring.add_argument("--embeddings-endpoint", metavar="URL")
    scoring.add_argument("--embedding-model", metavar="NAME")
    scoring.add_argument("--similarity-threshold", type=float, default=0.85)
    scoring.add_argument(
        "--api-key-env", metavar="VAR", help="environment variable holding the API key for every endpoint"
    )
    scoring.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    scoring.add_argument("--concurrency", type=int, default=4, help="requests in flight per endpoint")


def _add_eval(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "eval",
        help="score a golden set: one endpoint, or candidate vs baseline (exit 0 pass, 1 fail, 2 bad setup)",
        description="Run a JSONL golden set (id, messages or prompt, reference?, rubric?) against an"
        " OpenAI-compatible endpoint and pass or fail it: on its own against --min-score, or against a"
        " baseline with the paired test (--max-drop at --false-fail-rate).",
    )
    parser.add_argument("golden_set", type=Path, help="JSONL file")
    parser.add_argument("--endpoint", required=True, metavar="URL", help="candidate base URL, e.g. .../v1")
    parser.add_argument("--model", required=True, help="model name to ask the candidate for")
    parser.add_argument("--baseline-endpoint", metavar="URL", help="baseline base URL (paired mode)")
    parser.add_argument("--baseline-model", help="baseline model (default: --model)")
    parser.add_argument("--max-tokens", type=int, help="max_tokens for answers")
    parser.add_argument("--price-in", type=float, default=0.0, help="USD per million input tokens")
    parser.add_argument("--price-out", type=float, default=0.0, help="USD per million output tokens")
    add_scorer_arguments(parser)
    gate = parser.add_argument_group("pass criteria")
    gate.add_argument("--min-score", type=float, help="lowest acceptable mean score of the candidate")
    gate.add_argument("--max-drop", type=float, help="largest acceptable drop below the baseline")
    gate.add_argument("--false-fail-rate", type=float, default=0.01, help="paired test level (0.01)")
    gate.add_argument("--pairwise", action="store_true", help="llmJudge compares the answers, both orders")
    budget = parser.add_argument_group("budget")
    budget.add_argument("--max-duration", type=float, help="seconds; items not started by then are skipped")
    budget.add_argument("--max-cost", type=float, help="USD; items not started by then are skipped")
    out = parser.add_argument_group("output")
    out.add_argument("--junit", type=Path, help="write JUnit XML here")
    out.add_argument("--markdown", type=Path, help="write the Markdown summary here (default: stdout)")
    out.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto")
    parser.set_defaults(func=run_eval)


def progress_printer(mode: str, stream: TextIO) -> Any:
    if mode == "auto":
        mode = "bar" if stream.isatty() else "lines"
    if mode == "none":
        return None
    every: dict[str, int] = {}

    def bar(done: int, total: int) -> None:
        filled = 30 * done // max(total, 1)
        stream.write(f"\reval [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
        if done == total:
            stream.write("\n")
        stream.flush()

    def lines(done: int, total: int) -> None:
        # CI logs keep every line: about ten of them, not one per item.
        step = every.setdefault("step", max(1, total // 10))
        if done % step == 0 or done == total:
            stream.write(f"eval: {done}/{total} items\n")
            stream.flush()

    return bar if mode == "bar" else lines


def build_scorer(
    args: argparse.Namespace, http: httpx.Client, api_key: str | None
) -> tuple[Any, list[Meter]]:
    def client(url: str | None) -> OpenAIClient | None:
        if url is None:
            return None
        return OpenAIClient(
            http, url, api_key=api_key, max_concurrency=args.concurrency, timeout=args.timeout
        )

    judge, embeddings = client(args.judge_endpoint), client(args.embeddings_endpoint)
    rubric = args.rubric_file.read_text() if args.rubric_file else None
    config = ScorerConfig(
        args.scorer,
        judge_model=args.judge_model,
        rubric=rubric,
        pass_threshold=args.pass_threshold,
        embedding_model=args.embedding_model,
        similarity_threshold=args.similarity_threshold,
    )
    try:
        scorer = scorer_for(config, judge=judge, embeddings=embeddings)
    except (UnknownScorerError, ValueError) as error:
        raise MisconfiguredError(str(error)) from None
    return scorer, [c.meter for c in (judge, embeddings) if c is not None]


def _check(args: argparse.Namespace) -> None:
    paired = args.baseline_endpoint is not None
    if args.min_score is None and args.max_drop is None:
        raise MisconfiguredError("give --min-score, --max-drop (with --baseline-endpoint) or both")
    if args.max_drop is not None and not paired:
        raise MisconfiguredError("--max-drop compares with a baseline: give --baseline-endpoint")
    if args.pairwise and (not paired or args.scorer != "llmJudge"):
        raise MisconfiguredError("--pairwise needs --baseline-endpoint and --scorer llmJudge")
    if args.pairwise and args.min_score is not None:
        raise MisconfiguredError(
            "--pairwise scores preferences, not quality: use --max-drop, not --min-score"
        )
    if not 0 < args.false_fail_rate < 0.5:
        raise MisconfiguredError("--false-fail-rate must be in (0, 0.5)")
    if not args.golden_set.is_file():
        raise MisconfiguredError(f"no golden set at {args.golden_set}")


def _summed(meters: list[Meter]) -> Metered | None:
    snapshots = [m.snapshot() for m in meters]
    if not snapshots:
        return None
    return Metered(
        sum((s.usage for s in snapshots), Usage()),
        sum(s.requests for s in snapshots),
        sum(s.retries for s in snapshots),
        sum(s.failures for s in snapshots),
        sum(s.cost_usd for s in snapshots),
    )


def run_eval(args: argparse.Namespace) -> int:
    try:
        _check(args)
        api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
        if args.api_key_env and api_key is None:
            raise MisconfiguredError(f"${args.api_key_env} is not set")
        with httpx.Client(timeout=args.timeout) as http:
            return _evaluate(args, http, api_key)
    except (MisconfiguredError, GoldenSetError, OSError) as error:
        print(f"llmrollout eval: {error}", file=sys.stderr)
        return MISCONFIGURED


def _evaluate(args: argparse.Namespace, http: httpx.Client, api_key: str | None) -> int:
    scorer, meters = build_scorer(args, http, api_key)
    items = load_golden_set(args.golden_set.read_text(), needs_reference=scorer.needs_reference)
    pricing = Pricing(args.price_in, args.price_out)

    def target(name: str, url: str, model: str) -> Target:
        client = OpenAIClient(
            http,
            url,
            api_key=api_key,
            max_concurrency=args.concurrency,
            meter=Meter(pricing),
            timeout=args.timeout,
        )
        return Target(name, client, model, args.max_tokens)

    evaluator = Evaluator(
        scorer,
        budget=Budget(args.max_duration, args.max_cost),
        concurrency=args.concurrency,
        scorer_meters=meters,
    )
    progress = progress_printer(args.progress, sys.stderr)
    started = time.monotonic()
    candidate = target("candidate", args.endpoint, args.model)
    # One question first: a wrong URL or model is a setup error (exit 2), found in one request
    # instead of after every item has been retried.
    endpoints = [(candidate, args.endpoint)]
    if args.baseline_endpoint is not None:
        endpoints.append(
            (
                target("baseline", args.baseline_endpoint, args.baseline_model or args.model),
                args.baseline_endpoint,
            )
        )
    for probe, url in endpoints:
        try:
            probe.client.chat(probe.model, items[0].conversation(), max_tokens=args.max_tokens)
        except EndpointError as error:
            raise MisconfiguredError(f"no answer from {url}: {error}") from None
    baseline_run: RunResult | None = None
    decision: GateDecision
    if args.baseline_endpoint is None:
        run = evaluator.run(items, candidate, progress)
        scored = [r for r in run.items if r.verdict != "skipped"]
        decision = threshold_gate(
            [r.item_id for r in scored],
            [r.gate_score for r in scored],
            min_score=args.min_score,
            scorer_failed=[r.verdict == "error" and r.answer is not None for r in scored],
        )
    else:
        paired = evaluator.run_paired(items, candidate, endpoints[1][0], progress, pairwise=args.pairwise)
        run, baseline_run = paired.candidate, paired.baseline
        pairs: list[PairedItem] = paired_items(paired)
        decision = golden_set_gate(
            pairs,
            min_score=args.min_score,
            max_drop_vs_stable=args.max_drop,
            false_rollback_rate=args.false_fail_rate,
        )
    seconds = time.monotonic() - started
    report = Report(args.golden_set.name, scorer.name, decision, run, baseline_run, seconds, _summed(meters))
    summary = markdown(report)
    if args.markdown:
        args.markdown.write_text(summary)
    else:
        sys.stdout.write(summary)
    if args.junit:
        args.junit.write_text(junit(report))
    print(f"llmrollout eval: {decision.reason}: {decision.message}", file=sys.stderr)
    if decision.inconclusive:
        return MISCONFIGURED  # the judge or embeddings endpoint, not the candidate, failed
    return PASSED if decision.passed else FAILED
