"""What the judge service exports: llmrollout's eval metrics (read by the operator) and its own health."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# 0.05 steps over [0, 1], and 0.01 steps from 0.7 to 0.9 so a quality bar near 0.8 falls on a bucket
# edge and histogram_quantile does not interpolate across a 0.1-wide bucket around it.
SCORE_BUCKETS = tuple(
    sorted({round(0.05 * i, 2) for i in range(1, 21)} | {round(0.7 + 0.01 * i, 2) for i in range(21)})
)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class JudgeMetrics:
    def __init__(self, registry: CollectorRegistry, variant_label: str) -> None:
        v = variant_label
        self.score = Histogram(
            "llm_eval_score",
            "Judged score of sampled answers, in [0, 1].",
            [v],
            registry=registry,
            buckets=SCORE_BUCKETS,
        )
        self.results = Counter(
            "llm_eval_results", "Judged answers by verdict (pass or fail).", [v, "result"], registry=registry
        )
        self.feedback = Counter(
            "llm_feedback", "User feedback on answers (up or down).", [v, "value"], registry=registry
        )
        self.received = Counter(
            "llmrollout_judge_exchanges",
            "Exchanges received, by outcome: sampled (queued), not_sampled, dropped (queue full).",
            [v, "outcome"],
            registry=registry,
        )
        self.dropped = Counter(
            "llmrollout_judge_dropped",
            "Sampled exchanges dropped because the queue was full.",
            [v],
            registry=registry,
        )
        self.unscored = Counter(
            "llmrollout_judge_unscored",
            "Exchanges not scored: unparseable judge reply or endpoint error; never a pass.",
            [v, "reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "llmrollout_judge_latency_seconds",
            "Time to score one exchange (judge or embeddings round trips).",
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.queue_depth = Gauge(
            "llmrollout_judge_queue_depth", "Exchanges waiting to be scored.", registry=registry
        )
        self.queue_capacity = Gauge(
            "llmrollout_judge_queue_capacity",
            "Most exchanges that may wait; beyond it they are dropped.",
            registry=registry,
        )

    def prepare(self, variants: Iterable[str]) -> None:
        """Every series the operator reads, at 0 for each variant from the first scrape: a series that
        appears with its first verdict or thumbs-down leaves "none yet" indistinguishable from "not
        exported" until then, and a rollout's preflight refuses to start without the stable's series."""
        for variant in variants:
            self.score.labels(variant)
            for result in ("pass", "fail"):
                self.results.labels(variant, result)
            for value in ("up", "down"):
                self.feedback.labels(variant, value)
