"""The LLMDeployment spec: what users write. The CRD schema is generated from these models."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from llmrollout.api.durations import Duration

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUERY_PLACEHOLDERS = ("{{variant}}", "{{namespace}}", "{{interval}}")
PROMETHEUS_LABEL_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
MAX_VARIANTS = 16
MAX_STEPS = 20
# Each look costs Prometheus queries, a status write and often an Event: a floor keeps one object
# from turning the operator into a load generator. Test clusters render the CRD with a lower one
# (`llmrollout crd --min-interval 1s`) for second-scale fast tests.
MIN_INTERVAL = "10s"


def _cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry; fieldPath makes the apiserver name the field."""
    entry = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


def _validations(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


def interval_floor(floor: str = MIN_INTERVAL) -> dict[str, str]:
    """The CEL rule that refuses a duration below `floor` (a Go duration, e.g. "10s")."""
    return _cel(f"duration(self) >= duration('{floor}')", f"must be at least {floor}")


def _dns_label(description: str) -> Any:
    return Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63, description=description)


Severity = Literal["hard", "soft"] | None


def _severity() -> Any:
    return Field(
        None,
        description="hard: a breach by the serving version reroutes to fallbacks; soft: it only blocks"
        " a rollout (default: hard for errorRate, ttft and latency; soft for quality, cost and custom).",
    )


class Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class BackendRef(Model):
    name: str = Field(
        pattern=DNS_LABEL_PATTERN,
        min_length=1,
        max_length=63,
        description="Service in the LLMDeployment's namespace that serves this variant.",
    )
    port: int = Field(ge=1, le=65535, description="Service port.")


class Pricing(Model):
    input_per_million_tokens: float = Field(0.0, ge=0, description="USD per million input tokens.")
    output_per_million_tokens: float = Field(0.0, ge=0, description="USD per million output tokens.")


class Variant(Model):
    name: str = _dns_label("Name of the variant; a DNS label, unique within the LLMDeployment.")
    model: str = Field(min_length=1, max_length=253, description="Model served by this variant.")
    prompt_version: str | None = Field(
        None, max_length=63, description="Prompt version; a prompt-only canary differs only here."
    )
    backend_ref: BackendRef = Field(description="Service that serves this variant.")
    pricing: Pricing | None = Field(None, description="Token prices, used for the cost-per-request SLO.")


class ObjectRef(Model):
    name: str = Field(min_length=1, max_length=253, description="Name in the LLMDeployment's namespace.")


class Traffic(Model):
    model_config = ConfigDict(
        json_schema_extra=_validations(
            _cel(
                "self.router != 'gatewayAPI' || has(self.httpRouteRef)",
                "httpRouteRef is required when router is gatewayAPI",
                ".httpRouteRef",
            )
        )
    )
    router: Literal["gatewayAPI", "none"] = Field(
        "gatewayAPI", description="How traffic is split: gatewayAPI (HTTPRoute weights) or none."
    )
    http_route_ref: ObjectRef | None = Field(None, description="HTTPRoute whose backendRef weights are set.")


class Strategy(Model):
    steps: list[int] = Field(
        default=[5, 25, 50, 100],
        min_length=1,
        max_length=MAX_STEPS,
        description="Candidate weight in percent at each step; strictly increasing within 1..100.",
        json_schema_extra={
            "items": {"type": "integer", "minimum": 1, "maximum": 100},
            "x-kubernetes-list-type": "set",
            **_validations(_cel("self.isSorted()", "steps must be strictly increasing")),
        },
    )
    interval: Duration = Field(
        default=timedelta(minutes=1),
        description=f"Analysis period; a step lasts at least one. At least {MIN_INTERVAL}.",
        json_schema_extra={"default": "1m", **_validations(interval_floor())},
    )
    min_requests: int = Field(100, ge=0, description="Requests per version per step before a step can pass.")
    max_step_duration: Duration | None = Field(
        None,
        description="Longest a step may gather evidence before rolling back (default: 20 intervals).",
    )

    @property
    def step_timeout(self) -> timedelta:
        return self.max_step_duration or self.interval * 20


class Prometheus(Model):
    address: str = Field(
        pattern=r"^https?://[^\s]+$", max_length=2048, description="Base URL of the Prometheus HTTP API."
    )


class Metrics(Model):
    prometheus: Prometheus
    preset: Literal["openTelemetryGenAI", "vllm", "litellm", "custom"] = Field(
        "openTelemetryGenAI", description="Which metric names and labels to read."
    )
    variant_label: str = Field(
        "variant",
        pattern=PROMETHEUS_LABEL_PATTERN,
        max_length=128,
        description="Label whose value tells the variants apart in the series.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        max_length=16,
        description="Extra label matchers every query carries, e.g. {namespace: team-a}.",
        json_schema_extra=_validations(
            _cel(
                f"self.all(k, k.matches('{PROMETHEUS_LABEL_PATTERN}'))",
                "label names must match " + PROMETHEUS_LABEL_PATTERN,
            )
        ),
    )


class QualitySLO(Model):
    model_config = ConfigDict(
        json_schema_extra=_validations(
            _cel("has(self.minScore) || has(self.maxDropVsStable)", "set minScore, maxDropVsStable or both")
        )
    )
    min_score: float | None = Field(None, ge=0, le=1, description="Lowest acceptable mean eval score.")
    max_drop_vs_stable: float | None = Field(
        None, ge=0, le=1, description="Largest acceptable drop of the mean eval score below stable's."
    )
    severity: Severity = _severity()


class PercentileSLO(Model):
    p95: Duration = Field(description="Highest acceptable 95th percentile.")
    severity: Severity = _severity()


class ErrorRateSLO(Model):
    max: float = Field(ge=0, le=1, description="Highest acceptable share of failed requests.")
    severity: Severity = _severity()


class CostSLO(Model):
    max_usd: float = Field(ge=0, alias="maxUSD", description="Highest acceptable mean cost per request, USD.")
    severity: Severity = _severity()


class CustomSLO(Model):
    model_config = ConfigDict(
        json_schema_extra=_validations(_cel("has(self.min) || has(self.max)", "set min, max or both"))
    )
    name: str = _dns_label("Name of the SLO, used in status and Events.")
    query: str = Field(
        min_length=1,
        max_length=4096,
        description="PromQL; {{variant}}, {{namespace}} and {{interval}} are substituted.",
    )
    min: float | None = Field(None, description="Lowest acceptable value.")
    max: float | None = Field(None, description="Highest acceptable value.")
    severity: Severity = _severity()

    @field_validator("query")
    @classmethod
    def _known_placeholders(cls, query: str) -> str:
        unknown = set(re.findall(r"\{\{[^}]*\}\}", query)) - set(QUERY_PLACEHOLDERS)
        if unknown:
            raise ValueError(
                f"unknown placeholder {', '.join(sorted(unknown))}; use {', '.join(QUERY_PLACEHOLDERS)}"
            )
        if "{{variant}}" not in query:
            raise ValueError("must contain {{variant}}, or every variant would read the same series")
        return query


HARD_BY_DEFAULT = ("errorRate", "ttft", "latency")


class FallbackPolicy(Model):
    probe_weight: int = Field(
        5, ge=1, le=50, description="Percent of traffic left on a failed version to see it recover."
    )
    recovery_intervals: int = Field(
        3,
        ge=1,
        le=100,
        description="Healthy intervals in a row before traffic starts to return (hysteresis).",
    )
    failback_steps: list[int] = Field(
        default=[25, 50, 100],
        min_length=1,
        max_length=10,
        description="Percent of its traffic returned to a recovered version per healthy interval.",
        json_schema_extra={
            "items": {"type": "integer", "minimum": 1, "maximum": 100},
            "x-kubernetes-list-type": "set",
            **_validations(
                _cel("self.isSorted() && self[size(self) - 1] == 100", "must increase and end at 100")
            ),
        },
    )
    accept_unknown: bool = Field(
        True,
        description="A fallback without metrics yet (no traffic) counts as healthy until it shows otherwise.",
    )


class SLOs(Model):
    quality: QualitySLO | None = None
    ttft: PercentileSLO | None = Field(None, description="Time to first token.")
    latency: PercentileSLO | None = Field(None, description="End-to-end request latency.")
    error_rate: ErrorRateSLO | None = None
    cost_per_request: CostSLO | None = None
    custom: list[CustomSLO] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


def hard_slos(slos: SLOs) -> SLOs:
    """Only the SLOs whose breach by a serving version reroutes traffic to a fallback."""

    def hard(family: str, slo: Any) -> bool:
        default = "hard" if family in HARD_BY_DEFAULT else "soft"
        return slo is not None and (slo.severity or default) == "hard"

    return slos.model_copy(
        update={
            "quality": slos.quality if hard("quality", slos.quality) else None,
            "ttft": slos.ttft if hard("ttft", slos.ttft) else None,
            "latency": slos.latency if hard("latency", slos.latency) else None,
            "error_rate": slos.error_rate if hard("errorRate", slos.error_rate) else None,
            "cost_per_request": slos.cost_per_request
            if hard("costPerRequest", slos.cost_per_request)
            else None,
            "custom": [c for c in slos.custom if hard("custom", c)],
        }
    )


class Analysis(Model):
    method: Literal["sequential", "threshold"] = Field(
        "sequential", description="sequential (anytime-valid tests) or threshold (Flagger/Argo-style)."
    )
    false_rollback_rate: float = Field(
        0.01, gt=0, lt=0.5, description="For sequential: chance of rolling back a healthy candidate."
    )
    failure_threshold: int = Field(
        1, ge=1, le=100, description="For threshold: failed intervals in a step before rolling back."
    )
    inconclusive_limit: int = Field(
        5,
        ge=1,
        le=1000,
        description="Inconclusive intervals in a row (metrics missing, NaN, unreachable) before rollback.",
    )
    look_interval: Duration | None = Field(
        None,
        description="For sequential: how often the tests look at new data (default: half the interval);"
        f" a step still lasts at least strategy.interval. At least {MIN_INTERVAL}.",
        json_schema_extra=_validations(interval_floor()),
    )


class LLMDeploymentSpec(Model):
    model_config = ConfigDict(
        json_schema_extra=_validations(
            _cel(
                "self.variants.exists(v, v.name == self.stable)",
                "stable must name one of spec.variants",
                ".stable",
            ),
            _cel(
                "!has(self.candidate) || self.variants.exists(v, v.name == self.candidate)",
                "candidate must name one of spec.variants",
                ".candidate",
            ),
            _cel(
                "!has(self.candidate) || self.candidate != self.stable",
                "candidate must differ from stable",
                ".candidate",
            ),
            _cel(
                "!has(self.fallbacks) || self.fallbacks.all(f, self.variants.exists(v, v.name == f))",
                "every fallback must name one of spec.variants",
                ".fallbacks",
            ),
            _cel(
                "self.variants.all(a, self.variants.exists_one(b,"
                " b.backendRef.name == a.backendRef.name && b.backendRef.port == a.backendRef.port))",
                "each variant needs its own backendRef (name and port), or traffic cannot be split",
                ".variants",
            ),
            _cel(
                "!has(self.fallbacks) || self.fallbacks.all(f, f != self.stable"
                " && (!has(self.candidate) || f != self.candidate))",
                "fallbacks must not include stable or candidate",
                ".fallbacks",
            ),
        )
    )
    variants: list[Variant] = Field(
        min_length=1,
        max_length=MAX_VARIANTS,
        description="Every version that may get traffic.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    stable: str = _dns_label("Variant that serves 100% when nothing is rolling out.")
    candidate: str | None = Field(
        None,
        pattern=DNS_LABEL_PATTERN,
        max_length=63,
        description="Variant to roll out; setting or changing it starts a rollout.",
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        max_length=MAX_VARIANTS,
        description="Ordered variants that take over when the serving versions breach hard SLOs.",
        json_schema_extra={
            "items": {"type": "string", "pattern": DNS_LABEL_PATTERN, "maxLength": 63},
            "x-kubernetes-list-type": "set",
        },
    )
    traffic: Traffic
    strategy: Strategy = Field(default_factory=Strategy)
    metrics: Metrics
    slos: SLOs = Field(default_factory=SLOs)
    analysis: Analysis = Field(default_factory=Analysis)
    fallback_policy: FallbackPolicy = Field(default_factory=FallbackPolicy)
    paused: bool = Field(False, description="Hold the rollout where it is.")

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)
