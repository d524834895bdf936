"""What every SLO family provides; the registry in __init__.py is the only place that knows them all."""

from __future__ import annotations

from typing import Protocol

from llmrollout.analysis.hypotheses import LookInput, SequentialConfig, SLOLook
from llmrollout.analysis.observations import VariantWindow
from llmrollout.analysis.results import SLOResult
from llmrollout.api.spec import Pricing, SLOs


class SLOFamily(Protocol):
    """One kind of SLO (errors, a percentile, quality, cost, custom queries).

    `field` is its attribute on api.spec.SLOs; every method returns nothing when the spec does not
    configure the family. Results come in a fixed order, the same for every method.
    """

    field: str
    hard_by_default: bool

    def fields(self, slos: SLOs) -> tuple[str, ...]:
        """The VariantWindow fields its configured SLOs read (for preflights and conditions)."""
        ...

    def helpful_fields(self, slos: SLOs) -> tuple[str, ...]:
        """Fields read where the exporter has them: they sharpen a test, and without them it still
        runs (never missing data)."""
        ...

    def rollback_tests(self, slos: SLOs) -> int:
        """How many sequential tests share falseRollbackRate; fixed by the spec, never by the data."""
        ...

    def threshold(
        self, slos: SLOs, window: VariantWindow, baseline: VariantWindow | None, pricing: Pricing | None
    ) -> list[SLOResult]:
        """The threshold method: this one window against the SLO's bounds."""
        ...

    def observe(
        self, look: LookInput, slos: SLOs, pricing: Pricing | None, config: SequentialConfig
    ) -> list[SLOLook]:
        """The sequential method: this window's tests for the family's SLOs."""
        ...
