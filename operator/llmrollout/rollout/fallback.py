"""Rerouting around a serving version that breaches a hard SLO, and returning to it once it recovers.

Pure, like the rest of the state machine. While a fallback carries the traffic, the failed version
keeps a small probe weight so that its recovery can be seen in its own metrics; traffic returns only
after `recoveryIntervals` healthy intervals in a row and then in `failbackSteps`, so a version that
flaps between healthy and unhealthy never collects enough healthy intervals to make weights flap.
"""

from __future__ import annotations

import math

from llmrollout.analysis import Verdict, Window
from llmrollout.analysis.health import Health, evaluate_health
from llmrollout.api import FallbackStatus, LLMDeploymentSpec, LLMDeploymentStatus, Phase
from llmrollout.rollout.builder import DEGRADED, FALLBACK, Builder, all_to, split

# A degraded routing moves only to a version that is clearly less bad, so noise cannot make it flap.
LESS_BAD_FACTOR = 2.0


def health_of(spec: LLMDeploymentSpec, window: Window, variant: str) -> Health | None:
    data = window.variants.get(variant)
    if data is None:
        return None
    return evaluate_health(spec.slos, data, spec.variant(variant).pricing)


def watched(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> list[str]:
    """The variants whose metrics the next window must read."""
    if status.fallback is not None:
        names = [status.fallback.failed, status.fallback.active, *spec.fallbacks]
    else:
        names = [status.stable or spec.stable]
        if status.candidate is not None and status.phase in (Phase.PROGRESSING, Phase.PAUSED):
            names.append(status.candidate)
    return list(dict.fromkeys(n for n in names if any(v.name == n for v in spec.variants)))


def fallback_weights(spec: LLMDeploymentSpec, fallback: FallbackStatus) -> dict[str, int]:
    policy = spec.fallback_policy
    if fallback.active == fallback.failed:
        kept = 100
    elif fallback.failback_step < 0:
        kept = policy.probe_weight
    else:
        kept = max(policy.probe_weight, policy.failback_steps[fallback.failback_step])
    weights = {variant.name: 0 for variant in spec.variants}
    weights[fallback.failed] = kept
    weights[fallback.active] = weights[fallback.active] + 100 - kept
    return weights


def _rollout_weights(spec: LLMDeploymentSpec, status: LLMDeploymentStatus, phase: Phase) -> dict[str, int]:
    stable = status.stable or spec.stable
    if phase in (Phase.PROGRESSING, Phase.PAUSED) and status.candidate is not None:
        return split(spec, stable, status.candidate, status.candidate_weight)
    return all_to(spec, stable)


def _choose(
    spec: LLMDeploymentSpec, window: Window, failed: str, tried: list[str]
) -> tuple[str, Health | None, bool]:
    """The first untried fallback that is healthy (or unknown, if accepted); else the least bad version."""
    accept_unknown = spec.fallback_policy.accept_unknown
    for name in spec.fallbacks:
        if name in tried or name == failed:
            continue
        health = health_of(spec, window, name)
        if health is None or health.verdict == Verdict.INCONCLUSIVE:
            if accept_unknown:
                return name, health, False
        elif health.verdict == Verdict.PASS:
            return name, health, False
    return (*_least_bad(spec, window, failed), True)


def _least_bad(spec: LLMDeploymentSpec, window: Window, failed: str) -> tuple[str, Health | None]:
    options = [failed, *(f for f in spec.fallbacks if f != failed)]
    healths = {name: health_of(spec, window, name) for name in options}

    def badness(name: str) -> float:
        health = healths[name]
        return health.badness if health is not None else math.inf

    # Ties (and nothing known at all) keep the failed version: never route to nothing, nor blindly.
    best = min(options, key=lambda name: (badness(name), options.index(name)))
    return best, healths[best]


def fail_over_if_breached(spec: LLMDeploymentSpec, b: Builder, stable: str, window: Window) -> bool:
    """Outside a fallback: reroute when the serving version breaches a hard SLO beyond doubt."""
    if not spec.fallbacks:
        return False
    health = health_of(spec, window, stable)
    if health is None or health.verdict != Verdict.FAIL:
        return False
    target, _, degraded = _choose(spec, window, stable, [])
    resume = b.status.phase if b.status.phase is not None else Phase.IDLE
    fallback = FallbackStatus(
        failed=stable,
        active=target,
        reason=health.message,
        since=b.now,
        degraded=degraded,
        resume_phase=resume,
    )
    weights = fallback_weights(spec, fallback)
    b.update(phase=Phase.FALLBACK_ACTIVE, fallback=fallback, weights=weights)
    moved = f"{weights[target]}% to {target}, {weights[stable]}% left on {stable} to watch it recover"
    b.condition(FALLBACK, "True", "HardSLOBreached", f"{health.message}; {moved}")
    b.event("Warning", "FallbackActivated", f"{health.message}; {moved}")
    if degraded:
        _degraded(b, stable, target, health.message)
    return True


def _degraded(b: Builder, failed: str, chosen: str, why: str) -> None:
    message = f"every fallback breaches a hard SLO too ({why}); traffic stays on the least bad: {chosen}"
    b.condition(DEGRADED, "True", "AllFallbacksBreaching", message)
    b.event("Warning", "Degraded", message)


def during_fallback(spec: LLMDeploymentSpec, b: Builder, window: Window | None, action: str | None) -> None:
    """One decision while a fallback is active: follow the fallback's health, watch for recovery."""
    fallback = b.status.fallback
    assert fallback is not None
    if action == "failback":
        _fail_back(spec, b, fallback, "forced by a user")
        return
    if window is None:
        return
    fallback = _keep_a_healthy_route(spec, b, fallback, window)
    health = health_of(spec, window, fallback.failed)
    steps = spec.fallback_policy.failback_steps
    if health is None or all(r.value is None for r in health.results):
        pass  # nothing measured (no probe traffic yet, series missing): neither recovery nor relapse
    elif health.verdict == Verdict.PASS:
        healthy = fallback.healthy_intervals + 1
        recovered = healthy >= spec.fallback_policy.recovery_intervals
        step = fallback.failback_step + 1 if fallback.failback_step >= 0 else (0 if recovered else -1)
        if step == 0:
            b.event(
                "Normal",
                "FailbackStarted",
                f"{fallback.failed} healthy for {healthy} intervals in a row ({health.message}); "
                f"returning {steps[0]}% to it",
            )
        if step >= len(steps) - 1:
            _fail_back(spec, b, fallback, f"healthy for {healthy} intervals in a row")
            return
        fallback = fallback.model_copy(update={"healthy_intervals": healthy, "failback_step": step})
    else:
        # Recovery must be consecutive: a breach, even one not yet beyond doubt, starts the count again.
        if fallback.failback_step >= 0:
            b.event("Warning", "FailbackHalted", f"{health.message}; traffic back on {fallback.active}")
        fallback = fallback.model_copy(update={"healthy_intervals": 0, "failback_step": -1})
    b.update(fallback=fallback, weights=fallback_weights(spec, fallback))


def _keep_a_healthy_route(
    spec: LLMDeploymentSpec, b: Builder, fallback: FallbackStatus, window: Window
) -> FallbackStatus:
    """Move on from a fallback that breaches too; when all do, keep to the least bad version."""
    if fallback.degraded:
        target, health, degraded = _choose(spec, window, fallback.failed, fallback.tried)
        current = health_of(spec, window, fallback.active)
        current_badness = current.badness if current is not None else math.inf
        if degraded and (health is None or health.badness * LESS_BAD_FACTOR >= current_badness):
            return fallback
        if not degraded:
            b.condition(DEGRADED, "False", "FallbackHealthy", f"{target} holds its hard SLOs again")
        return fallback.model_copy(update={"active": target, "degraded": degraded})
    if fallback.active == fallback.failed:
        return fallback
    health = health_of(spec, window, fallback.active)
    if health is None or health.verdict != Verdict.FAIL:
        return fallback
    tried = [*fallback.tried, fallback.active]
    target, _, degraded = _choose(spec, window, fallback.failed, tried)
    if degraded:
        _degraded(b, fallback.failed, target, health.message)
    else:
        b.event("Warning", "FallbackMoved", f"{health.message}; traffic moves on to {target}")
    b.condition(FALLBACK, "True", "FallbackBreached", f"{health.message}; traffic on {target}")
    return fallback.model_copy(update={"active": target, "tried": tried, "degraded": degraded})


def _fail_back(spec: LLMDeploymentSpec, b: Builder, fallback: FallbackStatus, why: str) -> None:
    phase = fallback.resume_phase
    weights = _rollout_weights(spec, b.status, phase)
    b.update(phase=phase, fallback=None, weights=weights, last_analysis_at=b.now)
    if phase == Phase.PROGRESSING:
        b.update(step_started_at=b.now)
    message = f"{fallback.failed} serves again ({why})"
    if phase in (Phase.PROGRESSING, Phase.PAUSED) and b.status.candidate is not None:
        message += f"; rollout of {b.status.candidate} resumes at {b.status.candidate_weight}%"
    b.condition(FALLBACK, "False", "FailedBack", message)
    if fallback.degraded:
        b.condition(DEGRADED, "False", "FailedBack", message)
    b.event("Normal", "FailedBack", message)
