"""One look's evidence: the previous state, this window, and the state being built for the next look.

The SLO families (llmrollout.analysis.slos) update the evidence through a Look and build their
results with it, so that every family counts, tolerates missing data and words a rollback alike.
"""

from __future__ import annotations

import math

from llmrollout.analysis.checks import NO_DATA, data_problem, finite_nonnegative
from llmrollout.analysis.evidence.config import SequentialConfig
from llmrollout.analysis.evidence.state import SequentialState, Sums
from llmrollout.analysis.messages import count, format_ratio
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.ratio_test import RateRatioTest
from llmrollout.analysis.results import SLOResult
from llmrollout.analysis.verdict import Verdict


class Look:
    """One evaluation: the previous state, this window, and the state being built for the next look."""

    def __init__(
        self,
        state: SequentialState,
        candidate: VariantWindow,
        stable: VariantWindow | None,
        fresh: bool,
        stable_required: bool,
        rollback_miscoverage: float,
        config: SequentialConfig,
    ) -> None:
        self.previous = state
        self.candidate = candidate
        self.stable = stable
        self.fresh = fresh
        self.stable_required = stable_required
        self.rollback_miscoverage = rollback_miscoverage
        self.rollback_log_threshold = math.log(1.0 / rollback_miscoverage)
        self.config = config
        self.sums: dict[str, Sums] = {}
        self.ratio_tests: dict[str, RateRatioTest] = {}
        self.custom_breaches: dict[str, int] = {}
        # SLO -> why it shows no evidence of harm (point estimate within the SLO) although not yet
        # proven within it: enough to pass a step that is not the last before promotion.
        self.no_harm: dict[str, str] = {}

    def harmless(self, slo: str, label: str, relation: str, evidence: str) -> None:
        self.no_harm[slo] = (
            f"{label} {relation} on {self.candidate_name} by point estimate, no evidence of harm "
            f"({evidence}; not yet proven)"
        )

    @property
    def candidate_name(self) -> str:
        return self.candidate.variant

    @property
    def stable_name(self) -> str:
        return self.previous.stable

    def stable_problem(self, *values: float | None) -> str | None:
        """Why stable's side of a comparison is unusable this look, if it is needed at all."""
        if self.stable is None:
            return NO_DATA if self.stable_required else None
        problem = data_problem(*values)
        return problem if self.stable_required else None

    def updated_sums(self, key: str, total: float | None, requests: float | None) -> Sums:
        sums = self.sums.get(key) or self.previous.sums.get(key) or Sums()
        if self.fresh and finite_nonnegative(total, requests) and requests:
            assert total is not None
            sums = sums.add(min(total, requests), requests)
        self.sums[key] = sums
        return sums

    def updated_ratio_test(
        self,
        key: str,
        candidate_events: float | None,
        stable_events: float | None,
        candidate_exposure: float | None,
        stable_exposure: float | None,
    ) -> RateRatioTest:
        null_ratio = 1.0 + self.config.relative_tolerance
        test = self.ratio_tests.get(key) or self.previous.ratio_tests.get(key)
        if test is None or test.null_ratio != null_ratio:
            test = RateRatioTest.start(null_ratio)
        if self.fresh and finite_nonnegative(
            candidate_events, stable_events, candidate_exposure, stable_exposure
        ):
            assert candidate_events is not None and stable_events is not None
            assert candidate_exposure is not None and stable_exposure is not None
            test = test.update(candidate_events, stable_events, candidate_exposure, stable_exposure)
        self.ratio_tests[key] = test
        return test

    def result(
        self,
        slo: str,
        verdict: Verdict,
        value: float | None,
        bound: float | None,
        samples: float,
        message: str,
    ) -> SLOResult:
        return SLOResult(
            slo=slo,
            variant=self.candidate_name,
            value=value,
            bound=bound,
            samples=count(samples),
            verdict=verdict,
            message=message,
        )

    def inconclusive(
        self,
        slo: str,
        label: str,
        bound: float | None,
        reason: str,
        value: float | None = None,
        samples: float = 0,
    ) -> SLOResult:
        message = f"{label} inconclusive on {self.candidate_name}: {reason}"
        return self.result(slo, Verdict.INCONCLUSIVE, value, bound, samples, message)

    def ratio_note(self, test: RateRatioTest, shares: int = 1) -> str:
        estimate = test.estimate
        shown = "n/a" if estimate is None else f"{estimate:.2f}"
        evidence = math.exp(min(test.log_e_value(), 700.0))
        return (
            f"vs {self.stable_name} ratio {shown}, e={evidence:.3g} of "
            f"{shares / self.rollback_miscoverage:.3g} to roll back"
        )

    def ratio_failure(
        self,
        slo: str,
        label: str,
        bound: float | None,
        value: float | None,
        test: RateRatioTest,
        what: str,
        shares: int = 1,
    ) -> SLOResult | None:
        """FAIL when the rate-ratio test has crossed its boundary, else None. A test that shares its
        SLO's miscoverage with `shares - 1` others needs `shares` times the evidence."""
        log_e = test.log_e_value()
        threshold = self.rollback_log_threshold + math.log(shares)
        if log_e < threshold:
            return None
        candidate_rate = (
            test.candidate_events / test.candidate_exposure if test.candidate_exposure else math.nan
        )
        stable_rate = test.stable_events / test.stable_exposure if test.stable_exposure else math.nan
        estimate = test.estimate
        message = (
            f"{label} on {self.candidate_name} worse than {self.stable_name} beyond "
            f"{self.config.relative_tolerance:.0%}: {what} {format_ratio(candidate_rate)} vs "
            f"{format_ratio(stable_rate)} (ratio {'n/a' if estimate is None else f'{estimate:.2f}'}, "
            f"e={math.exp(min(log_e, 700.0)):.3g} >= {shares / self.rollback_miscoverage:.3g}, "
            f"n={count(test.candidate_exposure)} vs {count(test.stable_exposure)})"
        )
        return self.result(slo, Verdict.FAIL, value, bound, test.candidate_exposure, message)
