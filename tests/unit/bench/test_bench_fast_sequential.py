"""The benchmark's vectorised "ours" decides exactly as evaluate_sequential does."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from bench.decisions.fast_sequential import FastSequentialPolicy
from bench.decisions.model import OUTPUT_TOKENS, Scenario, scenario
from bench.decisions.policies import FAIL, HOLD, PASS, Look, SequentialPolicy, is_final_step
from bench.decisions.rollout import PROMOTED, ROLLED_BACK, run
from bench.decisions.simulate import generate

EXPENSIVE = Scenario(
    "output tokens x3",
    "tokens",
    replace(scenario("healthy: identical").candidate, output_tokens=3 * OUTPUT_TOKENS),
)
# 20% errors from the start: a severe breach during the warm-up.
SEVERE = Scenario(
    "errors 1% -> 20%", "errors", replace(scenario("healthy: identical").candidate, error_rate=0.2)
)
SCENARIOS = [
    scenario("healthy: identical"),
    scenario("healthy: warm-up spike"),
    scenario("healthy: outage on both"),
    scenario("errors 1% -> 5%"),
    scenario("pass rate 90% -> 80%"),
    scenario("TTFT p95 +100% (shift)"),
    EXPENSIVE,
    SEVERE,
]


@dataclass
class Both:
    """Runs both implementations on every look and keeps the operator's verdict."""

    name: str = "both"
    failure_limit: int = 1
    fast: FastSequentialPolicy = field(default_factory=FastSequentialPolicy)
    slow: SequentialPolicy = field(default_factory=SequentialPolicy)
    looks: int = 0
    verdicts: list[int] = field(default_factory=list)
    # (minute, whether the step is the final one, verdict) of every look
    seen: set[tuple[int, bool, int]] = field(default_factory=set)
    mismatches: list[str] = field(default_factory=list)

    def start(self, replicates: int) -> None:
        self.fast.start(replicates)
        self.slow.start(replicates)

    def look(self, look: Look) -> np.ndarray:
        fast = self.fast.look(look)
        slow = self.slow.look(look)
        self.looks += len(slow)
        self.verdicts.extend(slow.tolist())
        for level, verdict in zip(look.level.tolist(), slow.tolist(), strict=True):
            self.seen.add((min(look.minute, 3), is_final_step(level), verdict))
        for row in np.flatnonzero(fast != slow):
            self.mismatches.append(
                f"minute {look.minute} replicate {look.index[row]}: fast {fast[row]} vs operator {slow[row]}"
            )
        return slow


@pytest.mark.parametrize("mode", ["increase", "exact"])
@pytest.mark.parametrize("rps", [10.0, 100.0])
def test_same_decisions_as_evaluate_sequential(mode: str, rps: float) -> None:
    decisions = []
    both = Both()
    for k, item in enumerate(SCENARIOS):
        trace = generate(item, rps, 25, (7, k, int(rps)))
        outcome = run(both, trace, mode)
        decisions.extend(outcome.decision.tolist())
    assert not both.mismatches, both.mismatches[:10]
    # The comparison covered every kind of verdict, every rule and both ways a rollout ends: warm-up
    # looks (minutes 1 and 2) that hold or roll back on a severe breach, intermediate steps passed on
    # no evidence of harm, final steps passed on the full proof (at 10 rps rarely within the hour).
    assert FAIL in both.verdicts
    assert ROLLED_BACK in decisions
    assert both.looks > 1000
    assert (1, False, HOLD) in both.seen
    assert (2, False, HOLD) in both.seen
    # At 10 rps the first window has fewer than the 50 requests a severe breach needs.
    assert (1 if rps == 100.0 else 2, False, FAIL) in both.seen
    assert (3, False, PASS) in both.seen
    if rps == 100.0:
        assert (3, True, PASS) in both.seen
        assert PROMOTED in decisions
