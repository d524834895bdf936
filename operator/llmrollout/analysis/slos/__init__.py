"""The SLO families, in the order their results are reported. Adding an SLO means adding a module
here (and its field in api.spec.SLOs); nothing else lists them."""

from __future__ import annotations

from typing import Any

from llmrollout.analysis.slos.base import SLOFamily
from llmrollout.analysis.slos.cost import Cost
from llmrollout.analysis.slos.custom import Custom
from llmrollout.analysis.slos.errors import ErrorRate
from llmrollout.analysis.slos.feedback import Feedback
from llmrollout.analysis.slos.percentile import LATENCY, TTFT
from llmrollout.analysis.slos.quality import Quality
from llmrollout.api.spec import SLOs

FAMILIES: tuple[SLOFamily, ...] = (Quality(), TTFT, LATENCY, ErrorRate(), Cost(), Feedback(), Custom())


def rollback_test_count(slos: SLOs) -> int:
    """How many tests share falseRollbackRate; fixed by the spec, never by the data."""
    return sum(family.rollback_tests(slos) for family in FAMILIES)


def needed_fields(slos: SLOs) -> tuple[str, ...]:
    """Every VariantWindow field the configured SLOs read, in a stable order."""
    return tuple(dict.fromkeys(name for family in FAMILIES for name in family.fields(slos)))


def helpful_fields(slos: SLOs) -> tuple[str, ...]:
    """Fields the configured SLOs read where the exporter has them, beyond the needed ones."""
    needed = needed_fields(slos)
    helpful = (name for family in FAMILIES for name in family.helpful_fields(slos))
    return tuple(dict.fromkeys(name for name in helpful if name not in needed))


def hard_slos(slos: SLOs) -> SLOs:
    """Only the SLOs whose breach by a serving version reroutes traffic to a fallback."""

    def hard(slo: Any, family: SLOFamily) -> bool:
        default = "hard" if family.hard_by_default else "soft"
        return (slo.severity or default) == "hard"

    update: dict[str, Any] = {}
    for family in FAMILIES:
        configured = getattr(slos, family.field)
        if isinstance(configured, list):
            update[family.field] = [slo for slo in configured if hard(slo, family)]
        elif configured is not None and not hard(configured, family):
            update[family.field] = None
    return slos.model_copy(update=update)


__all__ = ["FAMILIES", "SLOFamily", "hard_slos", "helpful_fields", "needed_fields", "rollback_test_count"]
