"""The seam between the operator and whatever stores its metrics: one Protocol and its errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from llmrollout.analysis.observations import Window
from llmrollout.api.spec import CustomSLO


class MetricsError(Exception):
    """Base of every error a metric provider raises."""


class MetricsUnavailableError(MetricsError):
    """The metrics backend could not be asked or gave no usable answer; the whole window is unknown.

    The caller turns this into an "inconclusive" outcome, never into a verdict on the candidate.
    """


class UnknownMetricsProviderError(MetricsError, ValueError):
    """The spec names a provider or preset this operator does not know."""


class TemplateError(MetricsError, ValueError):
    """A custom SLO query template uses a placeholder where its value could not be made safe."""


class MetricProvider(Protocol):
    def read(
        self, variants: Sequence[str], start: float, end: float, custom: Sequence[CustomSLO] = ()
    ) -> Window:
        """Aggregates per variant over [start, end] (unix seconds); a missing series is None, never 0.

        Raises MetricsUnavailableError when the backend cannot be reached or answers with something that
        is not its API; a single query the backend rejects becomes a `Window.problems` entry instead.
        """
        ...
