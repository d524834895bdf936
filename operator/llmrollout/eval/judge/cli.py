"""`llmrollout judge`: run the judge service until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

import httpx

MISCONFIGURED = 2


def add_judge(commands: Any) -> None:
    from llmrollout.eval.cli import add_scorer_arguments

    parser: argparse.ArgumentParser = commands.add_parser(
        "judge",
        help="serve the online evaluator (POST /v1/exchanges, /v1/logs, /v1/feedback; GET /metrics)",
        description="Score a sample of production exchanges with the configured scorer and export"
        " llm_eval_score, llm_eval_results_total and llm_feedback_total for Prometheus.",
    )
    parser.add_argument("--listen", default="0.0.0.0:8080", metavar="HOST:PORT")
    parser.add_argument("--sample-rate", type=float, default=0.05, help="share of exchanges scored (0.05)")
    parser.add_argument("--queue-size", type=int, default=1000, help="exchanges waiting at most (1000)")
    parser.add_argument("--workers", type=int, default=2, help="exchanges scored at once (2)")
    parser.add_argument("--variant-label", default="variant", help="label naming the variant (variant)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="accepted variant, its series exported at 0 from the start (repeatable; default any)",
    )
    parser.add_argument(
        "--otlp-variant-attribute",
        help="OTLP record/resource attribute naming the variant in POST /v1/logs (default: --variant-label)",
    )
    add_scorer_arguments(parser)
    parser.set_defaults(func=run_judge)


def run_judge(args: argparse.Namespace) -> int:
    from llmrollout.eval.cli import MisconfiguredError, build_scorer
    from llmrollout.eval.judge.service import JudgeService, JudgeSettings

    host, _, port = args.listen.rpartition(":")
    problems = []
    if not port.isdigit():
        problems.append(f"--listen {args.listen!r} is not HOST:PORT")
    if not 0 <= args.sample_rate <= 1:
        problems.append("--sample-rate must be in [0, 1]")
    if args.queue_size < 1 or args.workers < 1:
        problems.append("--queue-size and --workers must be at least 1")
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and api_key is None:
        problems.append(f"${args.api_key_env} is not set")
    if problems:
        print(f"llmrollout judge: {'; '.join(problems)}", file=sys.stderr)
        return MISCONFIGURED
    settings = JudgeSettings(
        sample_rate=args.sample_rate,
        queue_size=args.queue_size,
        workers=args.workers,
        variant_label=args.variant_label,
        variants=frozenset(args.variant),
        otlp_variant_attribute=args.otlp_variant_attribute,
    )
    stop = threading.Event()
    with httpx.Client(timeout=args.timeout) as http:
        try:
            scorer, _ = build_scorer(args, http, api_key)
        except MisconfiguredError as error:
            print(f"llmrollout judge: {error}", file=sys.stderr)
            return MISCONFIGURED
        service = JudgeService(scorer, settings, host=host or "0.0.0.0", port=int(port))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        with service:
            print(
                f"llmrollout judge: {scorer.name} on {service.url}, sampling {settings.sample_rate:g},"
                f" queue {settings.queue_size}, {settings.workers} workers",
                flush=True,
            )
            stop.wait()
    return 0
