"""The benchmark's "ours": the operator's own sequential method (llmrollout.analysis.sequential's
evaluate_batch) on every replicate at once, reading counters as the operator does (exact window
increments, no extrapolation; rollout.run lags them by the scrape phase)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from bench.decisions.model import (
    FALSE_ROLLBACK_RATE,
    HORIZON_MINUTES,
    INTERVAL_SECONDS,
    MISS_RATE,
    PRICING,
    SLO_SPEC,
    STEPS,
    TOKEN_EDGES,
    TTFT_EDGES,
    WARMUP_SECONDS,
)
from bench.decisions.policies import FAIL, HOLD, PASS, PROMOTE, Look
from bench.decisions.simulate import WindowArrays
from llmrollout.analysis.batch import HistogramBatch, SideBatch, WindowBatch
from llmrollout.analysis.hypotheses import SequentialConfig
from llmrollout.analysis.sequential import How, SequentialState, evaluate_batch
from llmrollout.analysis.verdict import Verdict

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
CANDIDATE, STABLE = "candidate", "stable"


def side(window: WindowArrays) -> SideBatch:
    """What the operator's queries return for one version, as the kernels read it."""
    cumulative = np.concatenate([window.ttft, window.ttft_count[:, None]], axis=1)

    def tokens(hist: FloatArray) -> HistogramBatch:
        # Errors have no tokens: the histograms count answers, as the TTFT histogram does.
        return HistogramBatch(TOKEN_EDGES, np.concatenate([hist, window.ttft_count[:, None]], axis=1))

    return SideBatch(
        requests=window.requests,
        errors=window.errors,
        eval_passed=window.passed,
        eval_failed=window.failed,
        # The simulated judge is binary: a score of 1 for a pass, 0 for a fail.
        eval_score_sum=window.passed,
        eval_score_count=window.judged,
        input_tokens=window.in_tokens,
        output_tokens=window.out_tokens,
        ttft=HistogramBatch(TTFT_EDGES, cumulative),
        input_tokens_per_request=tokens(window.in_hist),
        output_tokens_per_request=tokens(window.out_hist),
    )


@dataclass
class OperatorPolicy:
    name: str = "ours (sequential)"
    failure_limit: int = 1
    counters: str = "exact"
    false_rollback_rate: float = FALSE_ROLLBACK_RATE
    miss_rate: float = MISS_RATE
    config: SequentialConfig = field(default_factory=lambda: SequentialConfig(warmup_seconds=WARMUP_SECONDS))
    horizon_minutes: int = HORIZON_MINUTES
    # Per replicate, whether the horizon's rule decided it (for the report): a promotion at the horizon
    # look, or a rollback there that no test's boundary made.
    at_horizon: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))

    def start(self, replicates: int) -> None:
        self.state = SequentialState(candidate=CANDIDATE, stable=STABLE, replicates=replicates)
        self.at_horizon = np.zeros(replicates, bool)

    def _rows(self, index: IntArray) -> SequentialState:
        state = self.state
        return SequentialState(
            candidate=state.candidate,
            stable=state.stable,
            replicates=len(index),
            started_at=state.started_at,
            last_window_end=state.last_window_end,
            looks=state.looks,
            values={key: value[index] for key, value in state.values.items()},
        )

    def _store(self, index: IntArray, rows: SequentialState) -> None:
        full = self.state.replicates
        for key, value in rows.values.items():
            stored = self.state.values.get(key)
            if stored is None or stored.shape[1:] != value.shape[1:]:
                stored = np.zeros((full, *value.shape[1:]))
                if key.startswith("param.") and not key.endswith(("Failed", "Judged", ".pool")):
                    stored[:] = np.nan
            stored[index] = value
            self.state.values[key] = stored
        self.state.started_at = rows.started_at
        self.state.last_window_end = rows.last_window_end
        self.state.looks = rows.looks

    def look(self, look: Look) -> IntArray:
        start = (look.minute - 1) * INTERVAL_SECONDS
        horizon = look.minute >= self.horizon_minutes
        first = self.state.started_at is None
        evaluation = evaluate_batch(
            SLO_SPEC,
            WindowBatch(start, start + INTERVAL_SECONDS, side(look.candidate_exact), side(look.stable_exact)),
            candidate=CANDIDATE,
            stable=STABLE,
            state=None if first else self._rows(look.index),
            false_rollback_rate=self.false_rollback_rate,
            miss_rate=self.miss_rate,
            pricing=PRICING,
            stable_required=True,
            final_step=look.level == len(STEPS) - 1,
            at_horizon=horizon,
            # As the operator does: the warm-up lasts a scrape interval longer, since an exact read
            # starts at the last scrape before its window.
            config=replace(self.config, warmup_seconds=self.config.warmup_seconds + look.scrape_seconds),
        )
        if first:
            self.state.started_at = evaluation.state.started_at
        self._store(look.index, evaluation.state)
        verdict = evaluation.verdict
        if horizon:
            by_test = np.zeros(len(look.index), bool)
            for decision in evaluation.slos:
                by_test |= np.isin(decision.how, (int(How.ROLLED_BACK), int(How.SEVERE_WARMUP)))
            failed = verdict == int(Verdict.FAIL)
            self.at_horizon[look.index] = ~(failed & by_test)
            return np.where(verdict == int(Verdict.FAIL), FAIL, PROMOTE).astype(np.int64)
        return np.where(
            verdict == int(Verdict.FAIL), FAIL, np.where(evaluation.passes_step, PASS, HOLD)
        ).astype(np.int64)
