"""The engine: answer each golden item with a target, score the answer, within time and cost budgets."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from llmrollout.eval._openai import EndpointError, Meter, OpenAIClient
from llmrollout.eval._types import Score, Usage
from llmrollout.eval.golden import GoldenItem
from llmrollout.eval.scorers.base import Scorer
from llmrollout.eval.scorers.llm_judge import LLMJudge

_T = TypeVar("_T")
ItemVerdict = Literal["pass", "fail", "unparseable", "error", "skipped"]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Target:
    """What answers the golden set: an OpenAI-compatible endpoint and the model name to ask for."""

    name: str
    client: OpenAIClient
    model: str
    max_tokens: int | None = None


@dataclass(frozen=True)
class Budget:
    max_seconds: float | None = None
    max_cost_usd: float | None = None


@dataclass(frozen=True)
class ItemResult:
    item_id: str
    verdict: ItemVerdict
    score: float | None
    answer: str | None = None
    detail: str = ""
    latency_s: float | None = None
    usage: Usage = field(default_factory=Usage)

    @property
    def gate_score(self) -> float:
        """What the gate counts: unscored items (no answer, judge error, unparseable) as 0, never a pass."""
        return self.score if self.score is not None and self.verdict in ("pass", "fail") else 0.0


@dataclass(frozen=True)
class RunResult:
    target: str
    items: tuple[ItemResult, ...]
    stopped: str | None = None
    cost_usd: float = 0.0
    usage: Usage = field(default_factory=Usage)

    @property
    def attempted(self) -> tuple[ItemResult, ...]:
        return tuple(r for r in self.items if r.verdict != "skipped")

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(r.verdict for r in self.items))

    @property
    def mean_score(self) -> float | None:
        attempted = self.attempted
        return sum(r.gate_score for r in attempted) / len(attempted) if attempted else None

    @property
    def pass_rate(self) -> float | None:
        attempted = self.attempted
        return sum(r.verdict == "pass" for r in attempted) / len(attempted) if attempted else None


@dataclass(frozen=True)
class PairedRun:
    candidate: RunResult
    baseline: RunResult
    pairwise: tuple[str, ...] = field(default=())  # per item, for pairwise judging: the judge's preference

    @property
    def stopped(self) -> str | None:
        return self.candidate.stopped or self.baseline.stopped


class _Budgeted:
    """Which items may still start: the time and cost spent so far, read before each item."""

    def __init__(self, budget: Budget, meters: Sequence[Meter], clock: Callable[[], float]) -> None:
        self._budget = budget
        self._meters = meters
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self.stopped: str | None = None

    def cost(self) -> float:
        return sum(m.snapshot().cost_usd for m in self._meters)

    def may_start(self) -> bool:
        with self._lock:
            if self.stopped is None:
                elapsed = self._clock() - self._started
                cost = self.cost()
                if self._budget.max_seconds is not None and elapsed >= self._budget.max_seconds:
                    self.stopped = f"time budget {self._budget.max_seconds:g}s spent"
                elif self._budget.max_cost_usd is not None and cost >= self._budget.max_cost_usd:
                    self.stopped = f"cost budget ${self._budget.max_cost_usd:g} spent (${cost:.4f})"
            return self.stopped is None


class _Progress:
    def __init__(self, total: int, report: Progress | None) -> None:
        self._total, self._report, self._done = total, report, 0
        self._lock = threading.Lock()

    def step(self) -> None:
        if self._report is None:
            return
        with self._lock:
            self._done += 1
            self._report(self._done, self._total)


class Evaluator:
    """Runs golden sets through one scorer. `scorer_meters` are the meters of the scorer's own clients
    (judge, embeddings), so their cost counts against the budget too."""

    def __init__(
        self,
        scorer: Scorer,
        *,
        budget: Budget = Budget(),
        concurrency: int = 4,
        scorer_meters: Sequence[Meter] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scorer = scorer
        self._budget = budget
        self._concurrency = concurrency
        self._scorer_meters = tuple(scorer_meters)
        self._clock = clock

    def run(self, items: Sequence[GoldenItem], target: Target, progress: Progress | None = None) -> RunResult:
        budget = _Budgeted(self._budget, (target.client.meter, *self._scorer_meters), self._clock)
        ticker = _Progress(len(items), progress)

        def one(item: GoldenItem) -> ItemResult:
            result = self._item(item, target) if budget.may_start() else _skipped(item)
            ticker.step()
            return result

        results = self._map(one, items)
        return _result(target, results, budget.stopped)

    def run_paired(
        self,
        items: Sequence[GoldenItem],
        candidate: Target,
        baseline: Target,
        progress: Progress | None = None,
        *,
        pairwise: bool = False,
    ) -> PairedRun:
        """Both targets answer every item; a budget stop skips whole pairs, so every pair is complete.

        With `pairwise` (llmJudge only), the judge compares the two answers in both orders instead of
        grading each: preferred 1, tie or position-dependent 0.5, not preferred 0 (unparseable: 0 each).
        """
        if pairwise and not isinstance(self.scorer, LLMJudge):
            raise ValueError("pairwise judging needs the llmJudge scorer")
        meters = (candidate.client.meter, baseline.client.meter, *self._scorer_meters)
        budget = _Budgeted(self._budget, meters, self._clock)
        ticker = _Progress(len(items), progress)

        def one(item: GoldenItem) -> tuple[ItemResult, ItemResult, str]:
            if not budget.may_start():
                ticker.step()
                return _skipped(item), _skipped(item), "skipped"
            if pairwise:
                pair = self._compared(item, candidate, baseline)
            else:
                pair = (self._item(item, candidate), self._item(item, baseline), "")
            ticker.step()
            return pair

        pairs = self._map(one, items)
        return PairedRun(
            _result(candidate, [p[0] for p in pairs], budget.stopped),
            _result(baseline, [p[1] for p in pairs], budget.stopped),
            tuple(p[2] for p in pairs) if pairwise else (),
        )

    def _map(self, one: Callable[[GoldenItem], _T], items: Sequence[GoldenItem]) -> list[_T]:
        with ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="eval") as pool:
            return list(pool.map(one, items))

    def _answer(self, item: GoldenItem, target: Target) -> tuple[str, float, Usage] | ItemResult:
        try:
            completion = target.client.chat(target.model, item.conversation(), max_tokens=target.max_tokens)
        except EndpointError as error:
            return ItemResult(item.id, "error", None, detail=f"{target.name} did not answer: {error}")
        return completion.text, completion.latency_s, completion.usage

    def _item(self, item: GoldenItem, target: Target) -> ItemResult:
        answered = self._answer(item, target)
        if isinstance(answered, ItemResult):
            return answered
        text, latency, usage = answered
        try:
            score: Score = self.scorer.score(item.exchange(text))
        except Exception as error:  # one item's scorer bug must not lose the whole run's results
            score = Score("error", None, f"scorer raised {error!r}")
        return ItemResult(item.id, score.verdict, score.value, text, score.detail, latency, usage)

    def _compared(
        self, item: GoldenItem, candidate: Target, baseline: Target
    ) -> tuple[ItemResult, ItemResult, str]:
        assert isinstance(self.scorer, LLMJudge)
        answers = self._answer(item, candidate), self._answer(item, baseline)
        if isinstance(answers[0], ItemResult) or isinstance(answers[1], ItemResult):
            # No comparison to make: a version that answered beats one that did not.
            failed = [a if isinstance(a, ItemResult) else None for a in answers]
            fallback = [_answered(item, a, 1.0) for a in answers]
            return failed[0] or fallback[0], failed[1] or fallback[1], "error"
        comparison = self.scorer.compare(item.exchange(answers[0][0]), answers[0][0], answers[1][0])
        value = {"first": 1.0, "second": 0.0, "tie": 0.5, "inconsistent": 0.5}.get(comparison.preference)
        if value is None:
            verdict: ItemVerdict = "unparseable" if comparison.preference == "unparseable" else "error"
            return (
                ItemResult(item.id, verdict, None, answers[0][0], comparison.detail),
                ItemResult(item.id, verdict, None, answers[1][0], comparison.detail),
                comparison.preference,
            )
        return (
            _answered(item, answers[0], value, comparison.detail),
            _answered(item, answers[1], 1.0 - value, comparison.detail),
            comparison.preference,
        )


def _answered(
    item: GoldenItem, answered: tuple[str, float, Usage] | ItemResult, value: float, detail: str = ""
) -> ItemResult:
    if isinstance(answered, ItemResult):
        return answered
    text, latency, usage = answered
    # In pairwise judging "pass" means preferred; a tie (0.5) is a pass for neither.
    return ItemResult(item.id, "pass" if value > 0.5 else "fail", value, text, detail, latency, usage)


def _skipped(item: GoldenItem) -> ItemResult:
    return ItemResult(item.id, "skipped", None, detail="budget spent before this item started")


def _result(target: Target, results: Sequence[ItemResult], stopped: str | None) -> RunResult:
    metered = target.client.meter.snapshot()
    return RunResult(target.name, tuple(results), stopped, metered.cost_usd, metered.usage)
