"""The LLMDeployment spec: what users write. The CRD schema is generated from these models."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from llmrollout.api.durations import Duration

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUERY_PLACEHOLDERS = ("{{variant}}", "{{namespace}}", "{{interval}}")
PROMETHEUS_LABEL_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
MAX_VARIANTS = 16
MAX_STEPS = 20
# A label value in every query: long enough for any real one, short enough that 16 of them do not
# make every query (and every message that quotes one) huge.
MAX_LABEL_VALUE = 1024
URL_PATTERN = r"^https?://[^\s]+$"
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
        " a rollout (default: hard for errorRate, ttft and latency; soft for quality, cost, feedback and"
        " custom).",
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
    endpoint: str | None = Field(
        None,
        pattern=URL_PATTERN,
        max_length=2048,
        description="OpenAI-compatible base URL for evaluations, e.g. http://bot-v1.team-a.svc:8000/v1"
        " (default: the backendRef Service's in-cluster address).",
    )
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
    max_duration: Duration = Field(
        default=timedelta(hours=1),
        description="Horizon: a rollout still undecided this long after it started is decided by the rule"
        " fixed in advance (each open SLO test goes the way its evidence leans), so every rollout ends"
        " promoted or rolled back by then.",
        json_schema_extra={"default": "1h"},
    )
    max_step_duration: Duration | None = Field(
        None,
        description="Optional: longest a step may gather evidence before rolling back (StepTimeout).",
    )


# A plain base URL: scheme, host[:port] and an optional path prefix. Credentials, a query or a fragment
# would be copied into every request and every message, so they are refused at apply.
PROMETHEUS_ADDRESS_PATTERN = r"^https?://[^\s/?#@]+(/[^\s?#@]*)?$"
# Each preset's label for the variant when the spec names none (kept in step with metrics/presets.py,
# which the unit tests check); the CRD needs it as data for the rule on metrics.labels.
DEFAULT_VARIANT_LABELS = {"litellm": "requested_model"}
_DEFAULT_VARIANT_LABEL = "variant"


class SecretKeyRef(Model):
    name: str = Field(min_length=1, max_length=253, description="Secret in the LLMDeployment's namespace.")
    key: str = Field(min_length=1, max_length=253, description="Key within the Secret.")


class SecretRef(Model):
    name: str = Field(min_length=1, max_length=253, description="Secret in the LLMDeployment's namespace.")


class PrometheusAuth(Model):
    """Credentials for Prometheus, read from a Secret at each read (so a rotation is picked up) and
    never written to status, Events or logs. As Flagger's MetricTemplate secretRef: the address
    stays a plain URL, and whoever may read the LLMDeployment does not see the credentials."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            _cel(
                "has(self.basicAuthSecretRef) != has(self.bearerTokenSecretRef)",
                "set exactly one of basicAuthSecretRef or bearerTokenSecretRef",
            )
        )
    )
    basic_auth_secret_ref: SecretRef | None = Field(
        None, description="HTTP basic auth: a Secret with the keys `username` and `password`."
    )
    bearer_token_secret_ref: SecretKeyRef | None = Field(
        None, description="A bearer token (Authorization: Bearer): the Secret key holding it."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PrometheusAuth:
        if (self.basic_auth_secret_ref is None) == (self.bearer_token_secret_ref is None):
            raise ValueError("set exactly one of basicAuthSecretRef or bearerTokenSecretRef")
        return self


class Prometheus(Model):
    model_config = ConfigDict(
        json_schema_extra=_validations(
            _cel(
                "duration(self.scrapeInterval) > duration('0s')",
                "scrapeInterval must be positive",
                ".scrapeInterval",
            )
        )
    )
    address: str = Field(
        pattern=PROMETHEUS_ADDRESS_PATTERN,
        max_length=2048,
        description="Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090;"
        " no credentials (see auth), query or fragment.",
    )
    auth: PrometheusAuth | None = Field(
        None, description="Credentials from a Secret in the LLMDeployment's namespace (default: none)."
    )
    scrape_interval: Duration = Field(
        default=timedelta(minutes=1),
        description="How often Prometheus scrapes the model servers (its scrape_interval; Prometheus's"
        " default is 1m). Sizes how far back a counter's last value is looked for, and explains messages.",
        json_schema_extra={"default": "1m"},
    )

    @field_validator("scrape_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("scrapeInterval must be positive")
        return value


def _variant_label_cel() -> str:
    default = f"'{_DEFAULT_VARIANT_LABEL}'"
    for preset, label in DEFAULT_VARIANT_LABELS.items():
        default = f"(self.preset == '{preset}' ? '{label}' : {default})"
    return f"!has(self.labels) || !((has(self.variantLabel) ? self.variantLabel : {default}) in self.labels)"


class Metrics(Model):
    model_config = ConfigDict(
        json_schema_extra=_validations(
            _cel(
                _variant_label_cel(),
                "metrics.labels must not set the variant label; it is set per variant",
                ".labels",
            )
        )
    )
    prometheus: Prometheus
    preset: Literal["openTelemetryGenAI", "vllm", "sglang", "litellm", "custom"] = Field(
        "openTelemetryGenAI", description="Which metric names and labels to read."
    )
    variant_label: str | None = Field(
        None,
        pattern=PROMETHEUS_LABEL_PATTERN,
        max_length=128,
        description="Label whose value tells the variants apart in the series"
        " (default: requested_model for litellm, variant otherwise).",
    )
    variant_from: Literal["label", "resource"] = Field(
        "label",
        description="label: the variant label is on every series; resource: it is an OpenTelemetry"
        " resource attribute, found on target_info and joined on (job, instance).",
    )
    labels: dict[str, Annotated[str, Field(max_length=MAX_LABEL_VALUE)]] = Field(
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

    @property
    def effective_variant_label(self) -> str:
        return self.variant_label or DEFAULT_VARIANT_LABELS.get(self.preset, _DEFAULT_VARIANT_LABEL)

    @model_validator(mode="after")
    def _variant_label_not_in_labels(self) -> Metrics:
        if self.effective_variant_label in self.labels:
            raise ValueError(
                f"metrics.labels must not set the variant label {self.effective_variant_label!r}"
            )
        return self


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


def _max_increase(default: float | None, what: str) -> Any:
    return Field(
        default,
        gt=0,
        le=100,
        description=f"Largest acceptable increase of the candidate's {what} over stable's, as a fraction"
        " (0.2 = 20% worse); the regression a rollout must catch even within the absolute bound.",
    )


class PercentileSLO(Model):
    p95: Duration = Field(description="Highest acceptable 95th percentile.")
    max_increase_vs_stable: float | None = _max_increase(0.2, "95th percentile")
    severity: Severity = _severity()


class ErrorRateSLO(Model):
    max: float = Field(ge=0, le=1, description="Highest acceptable share of failed requests.")
    max_increase_vs_stable: float | None = _max_increase(1.0, "error rate")
    severity: Severity = _severity()


class CostSLO(Model):
    model_config = ConfigDict(
        json_schema_extra=_validations(
            _cel(
                "has(self.maxUSD) || has(self.maxIncreaseVsStable)", "set maxUSD, maxIncreaseVsStable or both"
            )
        )
    )
    max_usd: float | None = Field(
        None, ge=0, alias="maxUSD", description="Highest acceptable mean cost per request, USD."
    )
    # No default: judging it needs token histograms (the presets name them), which not every
    # exporter has (LiteLLM's are counters).
    max_increase_vs_stable: float | None = _max_increase(None, "mean cost per request")
    severity: Severity = _severity()

    @model_validator(mode="after")
    def _some_bound(self) -> CostSLO:
        if self.max_usd is None and self.max_increase_vs_stable is None:
            raise ValueError("set maxUSD, maxIncreaseVsStable or both")
        return self


class FeedbackSLO(Model):
    max_down_rate_vs_stable: float = Field(
        gt=0,
        le=100,
        description="Largest acceptable increase of the candidate's thumbs-down share of user feedback"
        " (down / (up + down), from llm_feedback_total) over stable's, as a fraction (0.2 = 20% more).",
    )
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
    feedback: FeedbackSLO | None = Field(None, description="User thumbs-up/down, against stable's.")
    custom: list[CustomSLO] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class Analysis(Model):
    method: Literal["sequential", "threshold"] = Field(
        "sequential", description="sequential (anytime-valid tests) or threshold (Flagger/Argo-style)."
    )
    false_rollback_rate: float = Field(
        0.01, gt=0, lt=0.5, description="For sequential: chance of rolling back a healthy candidate."
    )
    miss_rate: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="For sequential: chance of promoting a candidate that breaches a stated bound (at the"
        " bound; a larger breach is missed less often).",
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


class JudgeEndpoint(Model):
    endpoint: str = Field(
        pattern=URL_PATTERN, max_length=2048, description="OpenAI-compatible base URL of the judge."
    )
    model: str = Field(min_length=1, max_length=253, description="Judge model name.")
    rubric: str | None = Field(
        None,
        max_length=16384,
        description="Prompt template; {question}, {answer}, {reference} and {rubric} are substituted"
        " (default: a built-in rubric asking for a JSON score in [0,1]).",
    )
    pass_threshold: float = Field(0.5, ge=0, le=1, description="A judged score at or above this passes.")
    api_key_secret_ref: SecretKeyRef | None = Field(None, description="Secret holding the judge's API key.")


class EmbeddingEndpoint(Model):
    endpoint: str = Field(
        pattern=URL_PATTERN, max_length=2048, description="OpenAI-compatible base URL for /embeddings."
    )
    model: str = Field(min_length=1, max_length=253, description="Embedding model name.")
    threshold: float = Field(
        0.85, ge=-1, le=1, description="Cosine similarity to the reference from which an answer passes."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret holding the embeddings endpoint's API key."
    )


class GoldenSet(Model):
    model_config = ConfigDict(
        json_schema_extra=_validations(
            _cel("self.scorer != 'llmJudge' || has(self.judge)", "scorer llmJudge needs judge", ".judge"),
            _cel(
                "self.scorer != 'embeddingSimilarity' || has(self.embeddings)",
                "scorer embeddingSimilarity needs embeddings",
                ".embeddings",
            ),
            _cel("has(self.minScore) || has(self.maxDropVsStable)", "set minScore, maxDropVsStable or both"),
        )
    )
    config_map_ref: ObjectRef = Field(description="ConfigMap holding the golden set as JSONL.")
    key: str = Field(
        "golden.jsonl",
        min_length=1,
        max_length=253,
        description="ConfigMap key; one JSON item a line: id, messages or prompt, reference?, rubric?",
    )
    scorer: Literal["exactMatch", "contains", "regex", "jsonSchema", "embeddingSimilarity", "llmJudge"] = (
        Field(description="How an answer is scored against the item.")
    )
    min_score: float | None = Field(None, ge=0, le=1, description="Lowest acceptable mean score.")
    max_drop_vs_stable: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Largest acceptable drop of the mean score below stable's, by a paired test at"
        " analysis.falseRollbackRate.",
    )
    judge: JudgeEndpoint | None = Field(None, description="For scorer llmJudge.")
    embeddings: EmbeddingEndpoint | None = Field(None, description="For scorer embeddingSimilarity.")
    concurrency: int = Field(4, ge=1, le=64, description="Requests in flight per endpoint.")
    request_timeout: Duration = Field(
        default=timedelta(seconds=60),
        description="Timeout of one request to a variant, judge or embeddings endpoint.",
        json_schema_extra={"default": "60s"},
    )
    max_duration: Duration = Field(
        default=timedelta(minutes=10),
        description="Time budget; items not started by then are skipped and the gate decides on the rest.",
        json_schema_extra={"default": "10m"},
    )
    max_cost_usd: float | None = Field(
        None,
        ge=0,
        alias="maxCostUSD",
        description="Cost budget (answers and judge, from variants' pricing); unset means unbounded.",
    )

    @model_validator(mode="after")
    def _scorer_has_its_endpoint(self) -> GoldenSet:
        # The CRD's CEL rules say the same; this catches specs that bypassed the schema.
        if self.scorer == "llmJudge" and self.judge is None:
            raise ValueError("scorer llmJudge needs judge")
        if self.scorer == "embeddingSimilarity" and self.embeddings is None:
            raise ValueError("scorer embeddingSimilarity needs embeddings")
        if self.min_score is None and self.max_drop_vs_stable is None:
            raise ValueError("set minScore, maxDropVsStable or both")
        return self


class Evaluation(Model):
    golden_set: GoldenSet | None = Field(
        None, description="Scored against candidate and stable, paired by item, before any traffic moves."
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
    evaluation: Evaluation = Field(default_factory=Evaluation)
    paused: bool = Field(False, description="Hold the rollout where it is.")

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)
