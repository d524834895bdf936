"""The series check before a rollout (`MetricsReady`) and `llmrollout check`: one report, two readers.

Pure: the handler (or the CLI) reads one scrape's window of the serving version and the candidate and
hands over which fields were found and which were missing; this says, per SLO, what was found, what
is missing (the selector looked for) and what to fix. The condition carries its summary, the CLI
prints it whole, so the two never disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from pydantic.alias_generators import to_camel

from llmrollout.analysis.slos import FAMILIES
from llmrollout.api import LLMDeploymentSpec
from llmrollout.metrics.prometheus import OWN_FIELDS as JUDGE_FIELDS

# llmrollout's own evaluator's series: missing means no judge runs, whatever the exporter does.
OWN_FIELDS: Final = frozenset(JUDGE_FIELDS)
# Where an exporter is known not to record a field: the advice names the reason, not the label.
KNOWN_GAPS: Final[dict[tuple[str, str], str]] = {
    ("openTelemetryGenAI", "ttft"): "OpenTelemetry's openai-v2 instrumentation records no time to first"
    " token; an OpenLLMetry-instrumented client records it for streamed calls, a server may export"
    " gen_ai_server_time_to_first_token_seconds; or remove slos.ttft",
    (
        "litellm",
        "ttft",
    ): "LiteLLM records time to first token for streamed requests only; or remove slos.ttft",
}
README_SECTION: Final = "README: Metrics, 'Getting the variant onto the series'"


@dataclass(frozen=True)
class Preflight:
    """What a check of the series found, per variant: each missing field's selector and each found
    field's metric names; or why Prometheus could not be asked."""

    missing: dict[str, dict[str, str]]
    found: dict[str, dict[str, str]] = field(default_factory=dict)
    # Per variant, the selector its series are read with (how a found name was looked for).
    selectors: dict[str, str] = field(default_factory=dict)
    unavailable: str | None = None
    problems: tuple[str, ...] = ()  # queries Prometheus rejected: their fields are neither found nor missing
    checking: bool = False  # the check is still running: nothing moves until it has answered


@dataclass(frozen=True)
class VariantSeries:
    """One SLO's series for one variant."""

    variant: str
    role: str  # "serving" | "candidate" | "fallback"
    found: tuple[tuple[str, str], ...]  # (field, series)
    missing: tuple[tuple[str, str], ...]  # (field, selector looked for)


@dataclass(frozen=True)
class SLOSeries:
    slo: str  # as in the spec: errorRate, ttft, ...
    variants: tuple[VariantSeries, ...]


@dataclass(frozen=True)
class MetricsReport:
    """Per SLO and variant, the series found and missing, and what to fix."""

    serving: str
    candidate: str | None
    slos: tuple[SLOSeries, ...]
    fixes: tuple[tuple[str, str], ...]  # (variant, what to change)
    unavailable: str | None = None
    problems: tuple[str, ...] = ()

    def missing_on(self, variant: str) -> list[str]:
        """Every selector looked for and not found on `variant`, each once, sorted."""
        return sorted(
            {s for slo in self.slos for v in slo.variants if v.variant == variant for _, s in v.missing}
        )

    @property
    def blocking(self) -> str | None:
        """Why the rollout must not start: the serving version lacks a series a configured SLO needs.
        The candidate's series may appear only with its first traffic, so they are reported, not
        required."""
        if self.unavailable is not None:
            return f"cannot check the series: {self.unavailable}"
        if self.problems:
            return f"cannot check the series: {'; '.join(self.problems)}"
        absent = self.missing_on(self.serving)
        if absent:
            return f"series missing on {self.serving}, which serves now: {', '.join(absent)}"
        return None

    @property
    def complete(self) -> bool:
        """Every configured SLO's series found on every variant checked."""
        if self.unavailable is not None or self.problems:
            return False
        return not any(v.missing for slo in self.slos for v in slo.variants)

    def summary(self) -> str:
        """The MetricsReady condition's message (the blocking reason and the fixes, or what was found)."""
        blocking = self.blocking
        if blocking is not None:
            serving = [fix for variant, fix in self.fixes if variant == self.serving]
            fixes = f" To fix: {' '.join(serving)}" if serving else ""
            target = blocked_prefix(self.candidate) if self.candidate else ""
            return f"{target}{blocking}.{fixes}"
        message = f"every SLO's series found on {self.serving}"
        if self.candidate is not None:
            later = self.missing_on(self.candidate)
            if later:
                message += f"; {self.candidate}'s appear with its traffic ({', '.join(later)})"
        return message

    def lines(self) -> list[str]:
        """The whole report, as `llmrollout check` prints it."""
        out: list[str] = []
        if self.unavailable is not None:
            out.append(f"cannot check the series: {self.unavailable}")
        out.extend(f"query failed: {p}" for p in self.problems)
        for slo in self.slos:
            out.append(f"{slo.slo}:")
            for v in slo.variants:
                state = "missing" if v.missing else "found"
                out.append(f"  {v.variant} ({v.role}): {state}")
                out.extend(f"    missing {name}: {series}" for name, series in v.missing)
                out.extend(f"    found   {name}: {series}" for name, series in v.found)
        if not self.slos and self.unavailable is None:
            out.append("no SLO reads a built-in series (custom queries are read with each window)")
        if self.fixes:
            out.append("to fix:")
            out.extend(f"  - {variant}: {fix}" for variant, fix in self.fixes)
        out.append(f"MetricsReady: {'False' if self.blocking else 'True'}: {self.summary()}")
        return out


def blocked_prefix(candidate: str) -> str:
    """How MetricsReady's message starts while the series check keeps `candidate`'s rollout from
    starting."""
    return f"rollout of {candidate} not started: "


def metrics_report(
    spec: LLMDeploymentSpec, preflight: Preflight, serving: str, candidate: str | None
) -> MetricsReport:
    """The report on `serving` and `candidate` for the SLOs `spec` configures."""
    roles = {serving: "serving", **({candidate: "candidate"} if candidate else {})}
    return report_for(spec, preflight, roles, serving, candidate)


def report_for(
    spec: LLMDeploymentSpec,
    preflight: Preflight,
    roles: Mapping[str, str],
    serving: str,
    candidate: str | None,
) -> MetricsReport:
    slos: list[SLOSeries] = []
    for family in FAMILIES:
        fields = family.fields(spec.slos)
        if not fields:
            continue
        rows = []
        for variant, role in roles.items():
            missing = preflight.missing.get(variant, {})
            found = preflight.found.get(variant, {})
            selector = preflight.selectors.get(variant, "")
            rows.append(
                VariantSeries(
                    variant,
                    role,
                    found=tuple((f, _with_selector(found[f], selector)) for f in fields if f in found),
                    missing=tuple((f, missing[f]) for f in fields if f in missing),
                )
            )
        slos.append(SLOSeries(to_camel(family.field), tuple(rows)))
    report = MetricsReport(serving, candidate, tuple(slos), (), preflight.unavailable, preflight.problems)
    return dataclasses.replace(report, fixes=tuple(_fixes(spec, report, roles)))


def _with_selector(names: str, selector: str) -> str:
    """`found` holds metric names; shown with the variant's selector they were read with."""
    return ", ".join(f"{name}{selector}" for name in names.split(", "))


def _fixes(spec: LLMDeploymentSpec, report: MetricsReport, roles: Mapping[str, str]) -> list[tuple[str, str]]:
    """What to change, per variant with missing series: the label, the exporter, the judge, or the SLO."""
    preset, label = spec.metrics.preset, spec.metrics.effective_variant_label
    fixes: list[tuple[str, str]] = []
    for variant, role in roles.items():
        rows = [v for slo in report.slos for v in slo.variants if v.variant == variant]
        missing = {name for row in rows for name, _ in row.missing}
        found = {name for row in rows for name, _ in row.found}
        later = (
            " (a candidate's series may appear only with its first traffic)" if role == "candidate" else ""
        )
        exported = missing - OWN_FIELDS
        if exported and not found - OWN_FIELDS:
            if spec.metrics.variant_from == "resource":
                advice = (
                    f'no target_info with {label}="{variant}": set the OpenTelemetry resource attribute'
                    f" (OTEL_RESOURCE_ATTRIBUTES={label}={variant}) on its application and check that"
                    f" Prometheus scrapes it{later}; {README_SECTION}."
                )
            else:
                advice = (
                    f'no series carries {label}="{variant}": check that Prometheus scrapes its servers and'
                    " that their series carry that label (a scrape relabeling, metrics.variantLabel naming"
                    " the exporter's own label, or variantFrom: resource for an OpenTelemetry resource"
                    f" attribute){later}; {README_SECTION}."
                )
            fixes.append((variant, advice))
        elif exported:
            unexplained = sorted(f for f in exported if (preset, f) not in KNOWN_GAPS)
            if unexplained:
                fixes.append(
                    (
                        variant,
                        f"its other series are found, so the exporter does not put {label} on"
                        f" {', '.join(unexplained)} (or does not export them): attach {label} at scrape"
                        " time, so that every series of the target carries it, or remove the SLOs that"
                        f" read them{later}; {README_SECTION}.",
                    )
                )
            fixes.extend(
                (variant, f"{KNOWN_GAPS[(preset, f)]}.") for f in sorted(exported - set(unexplained))
            )
        judged = sorted({"feedback" if f.startswith("feedback") else "quality" for f in missing & OWN_FIELDS})
        if judged:
            fixes.append(
                (
                    variant,
                    f"{' and '.join(judged)} read llmrollout's own series (llm_eval_score,"
                    " llm_eval_results_total, llm_feedback_total) with the variant label: run"
                    f" `llmrollout judge --variant {variant}` on its traffic, or remove"
                    f" {' and '.join(f'slos.{name}' for name in judged)}.",
                )
            )
    return fixes
