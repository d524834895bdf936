"""The judge service under overload: exchanges arrive faster than the judge can score them.

    python -m bench.judge [--quick]

Runs a real JudgeService on 127.0.0.1 whose judge is a stand-in OpenAI-compatible server that takes
`--judge-delay` seconds per verdict, and posts exchanges from several client threads as fast as they
go. It reports whether the queue stayed within its bound, whether every exchange is accounted for
(scored, unscored, dropped or still queued), and the process's resident memory at the end of each
phase relative to the end of warm-up: flat memory means the overflow was dropped, not buffered.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import httpx

from bench.judge.standin import OpenAIStandIn, Reply, completion
from llmrollout.eval import OpenAIClient, ScorerConfig, scorer_for
from llmrollout.eval.judge import JudgeService, JudgeSettings

ANSWER = "A reasonably long answer about resetting a password. " * 20  # ~1 KB an exchange


def rss_bytes() -> int:
    """Resident set size from /proc (Linux); what a container memory limit counts."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass
class Result:
    seconds: float
    sent: int
    sampled: int
    dropped: int
    scored: int
    unscored: int
    left_in_queue: int
    queue_capacity: int
    max_queue_depth: int
    workers: int
    judge_delay: float
    rss_baseline_mb: float
    rss_ratios: list[float]

    @property
    def accounted(self) -> bool:
        return (
            self.sent
            == self.sampled + self.dropped
            == self.scored + self.unscored + self.left_in_queue + self.dropped
        )


def _counter(service: JudgeService, name: str, **labels: str) -> float:
    value = service.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def run(
    *,
    seconds: float,
    clients: int,
    batch: int,
    queue_size: int,
    workers: int,
    judge_delay: float,
    phases: int = 4,
) -> Result:
    reply = Reply(body=completion('{"score": 0.9, "reason": "fine"}'), delay=judge_delay)
    stop = threading.Event()
    sent = [0] * clients
    with OpenAIStandIn(chat=lambda _: reply, record=False) as judge, httpx.Client(timeout=30) as judge_http:
        scorer = scorer_for(
            ScorerConfig("llmJudge", judge_model="judge"),
            judge=OpenAIClient(judge_http, judge.base_url, max_concurrency=workers),
        )
        settings = JudgeSettings(sample_rate=1.0, queue_size=queue_size, workers=workers)
        with JudgeService(scorer, settings) as service:
            body = [
                {"variant": ("v1", "v2")[i % 2], "prompt": "How do I reset my password?", "response": ANSWER}
                for i in range(batch)
            ]

            def post(index: int) -> None:
                with httpx.Client(timeout=30) as http:
                    while not stop.is_set():
                        http.post(service.url + "/v1/exchanges", json=body).raise_for_status()
                        sent[index] += batch

            threads = [threading.Thread(target=post, args=(i,), daemon=True) for i in range(clients)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            max_depth = 0
            marks: list[int] = []
            # Phase 0 is warm-up (threads, connections, allocator pools); later phases compare with it.
            for phase in range(phases + 1):
                phase_end = started + seconds * (phase + 1) / (phases + 1)
                while time.monotonic() < phase_end:
                    max_depth = max(max_depth, service.queue_depth())
                    time.sleep(0.01)
                marks.append(rss_bytes())
            stop.set()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            left = service.queue_depth()
            sampled = sum(
                _counter(service, "llmrollout_judge_exchanges_total", variant=v, outcome="sampled")
                for v in ("v1", "v2")
            )
            dropped = sum(
                _counter(service, "llmrollout_judge_dropped_total", variant=v) for v in ("v1", "v2")
            )
            # Exchanges a worker holds are neither queued nor scored yet: wait for them to finish.
            deadline = time.monotonic() + 30
            while True:
                scored = sum(_counter(service, "llm_eval_score_count", variant=v) for v in ("v1", "v2"))
                unscored = sum(
                    _counter(service, "llmrollout_judge_unscored_total", variant=v, reason=r)
                    for v in ("v1", "v2")
                    for r in ("unparseable", "error")
                )
                left = service.queue_depth()
                if scored + unscored + left == sampled or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
    baseline = marks[0]
    return Result(
        seconds=round(elapsed, 2),
        sent=sum(sent),
        sampled=int(sampled),
        dropped=int(dropped),
        scored=int(scored),
        unscored=int(unscored),
        left_in_queue=left,
        queue_capacity=queue_size,
        max_queue_depth=max_depth,
        workers=workers,
        judge_delay=judge_delay,
        rss_baseline_mb=round(baseline / 2**20, 1),
        rss_ratios=[round(m / baseline, 3) for m in marks[1:]],
    )


def report(result: Result) -> str:
    capacity = result.workers / result.judge_delay
    lines = [
        f"judge bench: {result.seconds:.1f}s, {result.workers} workers x"
        f" {result.judge_delay * 1000:.0f} ms a verdict"
        f" (at most {capacity:.0f} verdicts/s); clients sent {result.sent / result.seconds:.0f} exchanges/s",
        f"  sent {result.sent}, queued {result.sampled}, dropped {result.dropped}"
        f" ({result.dropped / max(result.sent, 1):.1%}), scored {result.scored}, unscored {result.unscored},"
        f" left in queue {result.left_in_queue}",
        f"  queue bounded: max depth {result.max_queue_depth} <= capacity {result.queue_capacity}:"
        f" {'yes' if result.max_queue_depth <= result.queue_capacity else 'NO'}",
        "  every exchange accounted for (sent = queued + dropped; queued = scored + unscored + still queued):"
        f" {'yes' if result.accounted else 'NO'}",
        f"  RSS at end of warm-up {result.rss_baseline_mb} MB; each later phase vs warm-up:"
        f" {', '.join(f'{r:.3f}' for r in result.rss_ratios)}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.judge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds instead of half a minute")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=20, help="exchanges a POST")
    parser.add_argument("--queue-size", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--judge-delay", type=float, default=0.02, help="seconds the judge takes a verdict")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON too")
    args = parser.parse_args(argv)
    seconds = args.seconds or (4.0 if args.quick else 30.0)
    result = run(
        seconds=seconds,
        clients=args.clients,
        batch=args.batch,
        queue_size=args.queue_size,
        workers=args.workers,
        judge_delay=args.judge_delay,
    )
    print(report(result))
    if args.json:
        print(json.dumps({**asdict(result), "accounted": result.accounted}))
    ok = result.max_queue_depth <= result.queue_capacity and result.accounted and result.dropped > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
