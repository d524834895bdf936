"""The golden-set gate from the spec: build the evaluator, run both versions, decide.

What the rollout calls before a candidate gets traffic. The decision itself is analysis.paired (pure).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from llmrollout.analysis.paired import GateDecision, PairedItem, golden_set_gate
from llmrollout.api.spec import GoldenSet, LLMDeploymentSpec, Variant
from llmrollout.eval._openai import Meter, OpenAIClient, Pricing
from llmrollout.eval.engine import Budget, Evaluator, ItemResult, PairedRun, Progress, Target
from llmrollout.eval.golden import load_golden_set
from llmrollout.eval.scorers.factory import ScorerConfig, scorer_for

# Reading a Secret's key (name, key) is the caller's: eval does not talk to Kubernetes.
SecretReader = Callable[[str, str], str]


def variant_endpoint(variant: Variant, namespace: str) -> str:
    """The variant's OpenAI-compatible base URL: spec.variants[].endpoint, else its Service in-cluster."""
    if variant.endpoint:
        return variant.endpoint
    ref = variant.backend_ref
    return f"http://{ref.name}.{namespace}.svc:{ref.port}/v1"


def scorer_config(golden: GoldenSet) -> ScorerConfig:
    judge, embeddings = golden.judge, golden.embeddings
    return ScorerConfig(
        golden.scorer,
        judge_model=judge.model if judge else None,
        rubric=judge.rubric if judge else None,
        pass_threshold=judge.pass_threshold if judge else 0.5,
        embedding_model=embeddings.model if embeddings else None,
        similarity_threshold=embeddings.threshold if embeddings else 0.85,
    )


def _scorer_failed(candidate: ItemResult, baseline: ItemResult) -> bool:
    # An endpoint error after an answer is the scorer's; both answers unparseable points at the judge
    # too. One side unparseable stays a 0 for that side: its answer may be what confused the judge.
    answered_error = any(r.verdict == "error" and r.answer is not None for r in (candidate, baseline))
    return answered_error or candidate.verdict == baseline.verdict == "unparseable"


def paired_items(run: PairedRun) -> list[PairedItem]:
    """Pairs the gate decides on: every item both versions attempted (budget-skipped pairs drop out)."""
    return [
        PairedItem(
            c.item_id,
            c.gate_score,
            b.gate_score,
            scorer_failed=_scorer_failed(c, b),
            baseline_failed=b.verdict == "error" and b.answer is None,
        )
        for c, b in zip(run.candidate.items, run.baseline.items, strict=True)
        if c.verdict != "skipped" and b.verdict != "skipped"
    ]


@dataclass(frozen=True)
class GateRun:
    decision: GateDecision
    run: PairedRun


def _pricing(variant: Variant) -> Pricing:
    if variant.pricing is None:
        return Pricing()
    return Pricing(variant.pricing.input_per_million_tokens, variant.pricing.output_per_million_tokens)


def run_golden_set_gate(
    spec: LLMDeploymentSpec,
    namespace: str,
    golden_jsonl: str,
    http: httpx.Client,
    *,
    candidate: str,
    stable: str,
    read_secret: SecretReader | None = None,
    progress: Progress | None = None,
) -> GateRun:
    """Run spec.evaluation.goldenSet against `candidate` and `stable`, paired by item, and decide.

    Blocking (threads inside); call it off the event loop. The caller owns `http` (TLS, proxies);
    goldenSet.requestTimeout applies to every request. Raises GoldenSetError for an unusable set and
    ValueError when spec.evaluation.goldenSet is unset.
    """
    golden = spec.evaluation.golden_set
    if golden is None:
        raise ValueError("spec.evaluation.goldenSet is not set")
    timeout = golden.request_timeout.total_seconds()

    def client(url: str, pricing: Pricing, secret: tuple[str, str] | None) -> OpenAIClient:
        key = read_secret(*secret) if secret and read_secret else None
        return OpenAIClient(
            http, url, api_key=key, max_concurrency=golden.concurrency, meter=Meter(pricing), timeout=timeout
        )

    judge = embeddings = None
    if golden.judge is not None:
        ref = golden.judge.api_key_secret_ref
        judge = client(golden.judge.endpoint, Pricing(), (ref.name, ref.key) if ref else None)
    if golden.embeddings is not None:
        ref = golden.embeddings.api_key_secret_ref
        embeddings = client(golden.embeddings.endpoint, Pricing(), (ref.name, ref.key) if ref else None)
    scorer = scorer_for(scorer_config(golden), judge=judge, embeddings=embeddings)
    items = load_golden_set(golden_jsonl, needs_reference=scorer.needs_reference)
    targets = []
    for name in (candidate, stable):
        variant = spec.variant(name)
        url = variant_endpoint(variant, namespace)
        targets.append(Target(name, client(url, _pricing(variant), None), variant.model))
    evaluator = Evaluator(
        scorer,
        budget=Budget(golden.max_duration.total_seconds(), golden.max_cost_usd),
        concurrency=golden.concurrency,
        scorer_meters=[c.meter for c in (judge, embeddings) if c is not None],
    )
    run = evaluator.run_paired(items, targets[0], targets[1], progress)
    decision = golden_set_gate(
        paired_items(run),
        min_score=golden.min_score,
        max_drop_vs_stable=golden.max_drop_vs_stable,
        false_rollback_rate=spec.analysis.false_rollback_rate,
    )
    return GateRun(decision, run)
