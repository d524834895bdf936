"""The rollout state machine: spec + status + what was observed + now -> next status and Events.

Pure: no I/O. The handler asks `due_window` whether an analysis window has closed, reads that
window's metrics, and calls `reconcile` with them; a restarted operator reading the same status
decides the same, because status is the only state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from llmrollout.analysis import SLOResult, Verdict, Window, evaluate_variant, results_to_status, worst
from llmrollout.analysis.sequential import (
    SequentialConfig,
    SequentialEvaluation,
    evaluate_sequential,
    load_state,
)
from llmrollout.analysis.sequential.plan import horizon_needed, plan
from llmrollout.analysis.slos import helpful_fields, needed_fields
from llmrollout.api import (
    LLMDeploymentSpec,
    LLMDeploymentStatus,
    Phase,
    format_duration,
)
from llmrollout.api.status import MAX_MESSAGE, truncate
from llmrollout.metrics.factory import INGESTION_DELAY_SECONDS
from llmrollout.rollout.builder import METRICS, PROGRESSING, READY, Builder, all_to, split
from llmrollout.rollout.fallback import during_fallback, fail_over_if_breached
from llmrollout.rollout.outcome import Outcome
from llmrollout.rollout.preflight import Preflight, blocked_prefix, metrics_report

Action = Literal["promote", "abort", "failback"]
PLAN = "Planned"
METRICS_READY = "MetricsReady"
MAX_CONDITION_MESSAGE = 1000
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# The first window after a start (or a resume) is at least this share of the cadence, not a sliver.
MIN_WINDOW_SHARE: Final = 0.5
# How long before a window's end its counters are read.
READ_OFFSET: Final = timedelta(seconds=INGESTION_DELAY_SECONDS)
# How late after a boundary the reconcile that starts a step may run and still count from the boundary.
MAX_STEP_SLACK: Final = timedelta(seconds=2)


@dataclass(frozen=True)
class Observation:
    """What the handler read for a due window: the data, or why there is none."""

    start: datetime
    end: datetime
    window: Window | None = None
    unavailable: str | None = None


@dataclass(frozen=True)
class GateReport:
    """What the golden-set gate of `candidate` has to say: done so far, or its decision, or why it could
    not run. `decision` is status-shaped (analysis.paired.GateDecision.to_status())."""

    candidate: str
    done: int = 0
    total: int = 0
    decision: dict[str, object] | None = None
    error: str | None = None


def missing_series(spec: LLMDeploymentSpec, window: Window) -> str:
    """The series the configured SLOs need and the window lacks, per variant, in words ("" if none)."""
    needed = needed_fields(spec.slos)
    parts = []
    for name, variant in window.variants.items():
        absent = sorted({variant.missing[f] for f in needed if f in variant.missing})
        if absent:
            parts.append(f"{name}: {', '.join(absent)}")
    return "series missing: " + "; ".join(parts) if parts else ""


def window_fields(spec: LLMDeploymentSpec) -> tuple[str, ...]:
    """The VariantWindow fields a look reads: the requests (a step counts them), what the
    configured SLOs need and what sharpens their tests where the exporter has it. A look reads
    nothing else, so a fleet with few SLOs costs Prometheus little."""
    return tuple(dict.fromkeys(("requests", *needed_fields(spec.slos), *helpful_fields(spec.slos))))


def serving_stable(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> str:
    """The version serving now: status.stable after a promotion, until the user changes spec.stable."""
    promoted = status.stable is not None and any(v.name == status.stable for v in spec.variants)
    if promoted and status.spec_stable in (None, spec.stable):
        assert status.stable is not None
        return status.stable
    return spec.stable


def due_window(
    spec: LLMDeploymentSpec, status: LLMDeploymentStatus, now: datetime
) -> tuple[datetime, datetime] | None:
    """The window to read now: the rollout's next look, or the serving versions' health check."""
    cadence = window_cadence(spec, status)
    if cadence is None or status.last_analysis_at is None:
        return None
    if not window_closed(status.last_analysis_at, cadence, shortest_window(spec, cadence), now):
        return None
    return status.last_analysis_at, boundary(now, cadence)


def shortest_window(spec: LLMDeploymentSpec, cadence: timedelta) -> timedelta:
    """How long the first window after a start (or a resume) must be: MIN_WINDOW_SHARE of a cadence
    of the candidate's traffic after the last scrape before it ends (read READ_OFFSET early), which
    may come up to a scrape interval before that; a whole cadence at most, as every later window is.
    Half a cadence alone would often hold nothing of the candidate's at scrapes as long as the
    interval (Prometheus's default 1m): a threshold check's first look then read as inconclusive."""
    scrape = spec.metrics.prometheus.scrape_interval if spec.metrics.prometheus else timedelta(0)
    return min(cadence, cadence * MIN_WINDOW_SHARE + scrape + READ_OFFSET)


def window_cadence(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> timedelta | None:
    """How often windows are read in this state: the rollout's looks, the serving versions' health
    checks when fallbacks protect them, or never (None)."""
    if status.last_analysis_at is None or status.phase in (None, Phase.FAILED):
        return None
    rolling = (
        status.phase == Phase.PROGRESSING
        and not spec.paused
        and status.candidate is not None
        and status.candidate == desired_candidate(spec, status)
    )
    if rolling:
        return look_interval(spec)
    if spec.fallbacks or status.fallback is not None:
        return spec.strategy.interval
    return None


def window_closed(last: datetime, cadence: timedelta, shortest: timedelta, now: datetime) -> bool:
    """Whether the window after `last` has closed by `now`: the latest boundary makes it at least
    `shortest` long (`shortest_window`)."""
    return boundary(now, cadence) - last >= shortest


def next_window_end(last: datetime, cadence: timedelta, shortest: timedelta, now: datetime) -> datetime:
    """When the window after `last` closes: `now` if it has closed already, else the first boundary
    after `now` that makes it at least `shortest` long."""
    if window_closed(last, cadence, shortest, now) or cadence <= timedelta(0):
        return now
    end = boundary(now, cadence) + cadence
    while end - last < shortest:
        end += cadence
    return end


def boundary(now: datetime, cadence: timedelta) -> datetime:
    """The latest multiple of `cadence` in epoch time at or before `now`: every LLMDeployment with the
    same cadence closes its windows at the same instants, so their reads can be batched."""
    if cadence <= timedelta(0):
        return now
    return EPOCH + cadence * ((now - EPOCH) // cadence)


def look_interval(spec: LLMDeploymentSpec) -> timedelta:
    """Threshold checks once per interval; anytime-valid tests may look more often at no cost in errors."""
    if spec.analysis.method == "sequential":
        return spec.analysis.look_interval or spec.strategy.interval / 2
    return spec.strategy.interval


def desired_candidate(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> str | None:
    candidate = spec.candidate
    return candidate if candidate is not None and candidate != serving_stable(spec, status) else None


def checked_variants(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> tuple[str, str | None]:
    """The versions a series check covers: the one serving now, and the candidate rolling out or about
    to start (None when there is none)."""
    rolling = status.candidate if status.phase in (Phase.PROGRESSING, Phase.PAUSED) else None
    return serving_stable(spec, status), rolling or desired_candidate(spec, status)


def reconcile(
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    generation: int | None,
    now: datetime,
    observation: Observation | None = None,
    action: Action | None = None,
    preflight: Preflight | None = None,
    gate: GateReport | None = None,
) -> Outcome:
    """The next status for this spec; `observation` is the due window's data, `action` a user's command,
    `preflight` what a check of the series found when a rollout is about to start (None: not checked)."""
    b = Builder(status, generation, now)
    stable = serving_stable(spec, status)
    candidate = desired_candidate(spec, status)
    if status.phase in (None, Phase.FAILED):
        b.event("Normal", "Initialized", f"{stable} serves 100%")
    b.condition(READY, "True", "Reconciled", f"{stable} is stable")
    window = observation.window if observation is not None else None
    if observation is not None and window is None:
        b.condition(METRICS, "False", "MetricsUnavailable", observation.unavailable or "no metrics")
    elif window is not None and window.problems:
        # Some queries failed (their fields are missing, so inconclusive); say which, briefly.
        b.condition(METRICS, "False", "QueryFailed", "; ".join(window.problems)[:MAX_CONDITION_MESSAGE])
    elif window is not None and (absent := missing_series(spec, window)):
        # A series that does not exist is never read as zero: the SLOs that need it hold, and this says why.
        b.condition(METRICS, "False", "SeriesMissing", absent[:MAX_CONDITION_MESSAGE])
    elif observation is not None:
        b.condition(METRICS, "True", "MetricsRead", f"read window ending {observation.end.isoformat()}")

    if status.fallback is not None:
        # Protecting users comes first: the rollout and spec changes wait until traffic is back.
        if observation is not None:
            b.update(last_analysis_at=observation.end)
        if action in ("promote", "abort"):
            b.event(
                "Warning", "ActionDeferred", f"{action} waits until {status.fallback.failed} serves again"
            )
        during_fallback(spec, b, window, action)
        return b.outcome()
    b.update(stable=stable, spec_stable=spec.stable)
    if observation is not None and status.phase != Phase.PROGRESSING:
        b.update(last_analysis_at=observation.end)
    if window is not None and status.phase is not None and fail_over_if_breached(spec, b, stable, window):
        b.update(last_analysis_at=observation.end if observation else now)
        return b.outcome()

    if candidate is None:
        _settle(spec, b, stable)
    elif candidate != status.candidate:
        if status.phase in (None, Phase.FAILED) and preflight is not None:
            _settle(spec, b, stable)  # a new object serves its stable version while the series are checked
        if _gate_passed(spec, b, stable, candidate, gate) and _metrics_ready(
            spec, b, stable, candidate, preflight
        ):
            _start(spec, b, stable, candidate, restarted=status.phase == Phase.PROGRESSING)
    elif status.phase in (Phase.ROLLED_BACK, Phase.PROMOTED):
        pass  # finished with this candidate; a new spec.candidate starts the next rollout
    elif action == "abort":
        _roll_back(spec, b, stable, candidate, "Aborted", f"rollout of {candidate} aborted by a user")
    elif action == "promote":
        _promote(spec, b, candidate, f"{candidate} promoted by a user at {status.candidate_weight}%")
    elif spec.paused:
        _pause(b, candidate)
    elif status.phase == Phase.PAUSED:
        b.update(phase=Phase.PROGRESSING, last_analysis_at=now)
        b.condition(PROGRESSING, "True", "Resumed", f"rollout of {candidate} resumed at step {status.step}")
        b.event("Normal", "Resumed", f"rollout of {candidate} resumed at {status.candidate_weight}%")
    elif observation is not None:
        _analyse(spec, b, stable, candidate, observation)
    return b.outcome()


def gate_pending(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> str | None:
    """The candidate whose golden-set gate the handler should run now, if any."""
    candidate = desired_candidate(spec, status)
    if (
        candidate is None
        or candidate == status.candidate
        or spec.evaluation is None
        or spec.evaluation.golden_set is None
        or status.phase != Phase.EVALUATING
        or status.evaluation.get("candidate") != candidate
    ):
        return None
    return candidate


def _gate_passed(
    spec: LLMDeploymentSpec, b: Builder, stable: str, candidate: str, gate: GateReport | None
) -> bool:
    """The golden-set gate before any traffic: Evaluating until the paired test of candidate against
    stable has decided; a failure rolls the candidate back without it ever serving a request."""
    if spec.evaluation is None or spec.evaluation.golden_set is None:
        return True
    evaluation = b.status.evaluation
    if b.status.phase != Phase.EVALUATING or evaluation.get("candidate") != candidate:
        message = f"golden set: scoring {candidate} against {stable} before any traffic moves"
        started = b.now.isoformat()
        b.update(
            phase=Phase.EVALUATING,
            evaluation={"candidate": candidate, "stable": stable, "attempts": 0, "startedAt": started},
        )
        b.condition(PROGRESSING, "True", "Evaluating", message)
        b.event("Normal", "GoldenSetStarted", message)
        return False
    if gate is None or gate.candidate != candidate:
        return False
    if gate.decision is None and gate.error is None:
        b.update(evaluation={**evaluation, "done": gate.done, "total": gate.total})
        b.condition(
            PROGRESSING,
            "True",
            "Evaluating",
            f"golden set: {gate.done}/{gate.total} items of {candidate} scored",
        )
        return False
    attempts = int(str(evaluation.get("attempts", 0))) + 1
    if gate.decision is not None and gate.decision.get("reason") == "GoldenSetPassed":
        b.update(evaluation={**evaluation, "attempts": attempts, "result": gate.decision})
        b.event("Normal", "GoldenSetPassed", str(gate.decision.get("message", "")))
        return True
    if gate.decision is not None and gate.decision.get("reason") == "GoldenSetFailed":
        message = str(gate.decision.get("message", "golden set failed"))
        b.update(
            evaluation={**evaluation, "attempts": attempts, "result": gate.decision}, candidate=candidate
        )
        _roll_back(spec, b, stable, candidate, "GoldenSetFailed", message)
        return False
    # Inconclusive (a scorer outage, nothing scored) or could not run: never a pass; retry, within limits.
    why = gate.error or str((gate.decision or {}).get("message", "inconclusive"))
    b.update(evaluation={**evaluation, "attempts": attempts, "lastError": why})
    limit = spec.analysis.inconclusive_limit
    if attempts >= limit:
        b.update(candidate=candidate)
        _roll_back(
            spec,
            b,
            stable,
            candidate,
            "GoldenSetInconclusive",
            f"{attempts} golden-set runs without a verdict: {why}",
        )
        return False
    message = f"golden set of {candidate} undecided ({attempts}/{limit}): {why}"
    b.condition(PROGRESSING, "True", "Evaluating", message)
    b.event("Warning", "GoldenSetInconclusive", message)
    return False


def _metrics_ready(
    spec: LLMDeploymentSpec, b: Builder, stable: str, candidate: str, preflight: Preflight | None
) -> bool:
    """MetricsReady before any traffic moves: a rollout whose SLOs cannot be read does not start."""
    if preflight is None:
        return True
    if preflight.checking:
        last = b.status.condition(METRICS_READY)
        if last is not None and last.status == "False" and last.message.startswith(blocked_prefix(candidate)):
            # Asked again while the last answer keeps this rollout from starting (a series missing, a
            # Prometheus that did not answer): that answer stands until the next, rather than the
            # condition turning Unknown for every check and False again after it.
            return False
        message = f"checking the series of {stable} and {candidate}"
        b.condition(METRICS_READY, "Unknown", "Checking", message)
        b.condition(PROGRESSING, "False", "WaitingForMetrics", f"{message} before any traffic moves")
        return False
    report = metrics_report(spec, preflight, stable, candidate)
    message = truncate(report.summary(), MAX_MESSAGE)
    # Prometheus could not be asked: MetricsAvailable says so, as it does for a window's read.
    if preflight.unavailable is not None:
        b.condition(METRICS, "False", "MetricsUnavailable", preflight.unavailable)
    elif preflight.problems:
        b.condition(METRICS, "False", "QueryFailed", "; ".join(preflight.problems)[:MAX_CONDITION_MESSAGE])
    if report.blocking is None:
        b.condition(METRICS_READY, "True", "SeriesFound", message)
        return True
    said = (c := b.status.condition(METRICS_READY)) is not None and c.message == message
    b.condition(METRICS_READY, "False", "SeriesMissing", message)
    b.condition(PROGRESSING, "False", "WaitingForMetrics", message)
    if not said:
        b.event("Warning", "RolloutBlocked", message)
    return False


def _settle(spec: LLMDeploymentSpec, b: Builder, stable: str) -> None:
    phase = b.status.phase
    if phase not in (Phase.PROMOTED, Phase.IDLE) or b.status.weights != all_to(spec, stable):
        phase = Phase.PROMOTED if phase == Phase.PROMOTED else Phase.IDLE
    b.update(
        phase=phase,
        candidate=None,
        candidate_weight=0,
        step=0,
        weights=all_to(spec, stable),
        step_started_at=None,
        last_analysis_at=b.status.last_analysis_at or b.now,
        failed_checks=0,
        inconclusive_checks=0,
        step_requests={},
    )
    b.condition(PROGRESSING, "False", "NoCandidate", f"{stable} serves 100%; no candidate to roll out")


def _start(spec: LLMDeploymentSpec, b: Builder, stable: str, candidate: str, restarted: bool) -> None:
    previous = b.status.candidate
    weight = spec.strategy.steps[0]
    b.update(
        phase=Phase.PROGRESSING,
        candidate=candidate,
        step=0,
        candidate_weight=weight,
        weights=split(spec, stable, candidate, weight),
        step_started_at=b.now,
        rollout_started_at=b.now,
        last_analysis_at=b.now,
        failed_checks=0,
        inconclusive_checks=0,
        step_requests={},
        analysis={},
        plan={},  # the previous rollout's, and the SLOs its Warnings named
    )
    steps = len(spec.strategy.steps)
    message = f"rolling out {candidate} over {stable}: {weight}% (step 1/{steps})"
    if restarted:
        message = f"candidate changed from {previous} to {candidate}; {message}"
    b.condition(PROGRESSING, "True", "RolloutStarted", message)
    b.event("Normal", "RolloutRestarted" if restarted else "RolloutStarted", message)


def _pause(b: Builder, candidate: str) -> None:
    if b.status.phase != Phase.PAUSED:
        message = f"rollout of {candidate} paused at {b.status.candidate_weight}%"
        b.update(phase=Phase.PAUSED)
        b.condition(PROGRESSING, "Unknown", "Paused", message)
        b.event("Normal", "Paused", message)


def _promote(spec: LLMDeploymentSpec, b: Builder, candidate: str, message: str) -> None:
    b.update(
        phase=Phase.PROMOTED,
        stable=candidate,
        candidate=None,
        candidate_weight=0,
        weights=all_to(spec, candidate),
        step=len(spec.strategy.steps) - 1,
        step_started_at=None,
        last_analysis_at=b.now,
    )
    b.condition(PROGRESSING, "False", "Promoted", message)
    b.event("Normal", "Promoted", message)


def _roll_back(
    spec: LLMDeploymentSpec, b: Builder, stable: str, candidate: str, reason: str, message: str
) -> None:
    b.update(
        phase=Phase.ROLLED_BACK,
        candidate_weight=0,
        weights=all_to(spec, stable),
        step_started_at=None,
        last_analysis_at=b.now,
    )
    b.condition(PROGRESSING, "False", reason, message)
    b.event("Warning", "RolledBack", f"{candidate} rolled back to 0%: {message}")


def _analyse(
    spec: LLMDeploymentSpec, b: Builder, stable: str, candidate: str, observation: Observation
) -> None:
    b.update(last_analysis_at=observation.end)
    if observation.window is None:
        _inconclusive(spec, b, stable, candidate, observation.unavailable or "no metrics")
        return
    window = observation.window
    if candidate not in window.variants or stable not in window.variants:
        _inconclusive(spec, b, stable, candidate, "the metrics provider returned no data for a variant")
        return
    requests = {
        name: b.status.step_requests.get(name, 0.0) + (window.variants[name].requests or 0.0)
        for name in (stable, candidate)
    }
    if spec.analysis.method == "threshold":
        verdict, results, reason = _threshold(spec, stable, candidate, window)
        sequential = None
    else:
        sequential = _sequential(spec, b.status, stable, candidate, window, b.now)
        verdict, results, reason = sequential.verdict, sequential.results, sequential.reason
    analysis: dict[str, object] = {
        "method": spec.analysis.method,
        "windowStart": observation.start.isoformat(),
        "windowEnd": observation.end.isoformat(),
        "verdict": verdict.label,
        "reason": reason,
        "results": results_to_status(results),
    }
    if sequential is not None:
        analysis["sequential"] = sequential.state.to_status()
        _plan(spec, b, candidate, stable, sequential, window, observation)
    b.update(step_requests=requests, analysis=analysis)
    if verdict == Verdict.FAIL:
        _failed(spec, b, stable, candidate, results)
    elif sequential is not None and sequential.batch.at_horizon and verdict == Verdict.PASS:
        _promote(
            spec,
            b,
            candidate,
            f"{candidate} promoted at the horizon ({format_duration(spec.strategy.max_duration)}): {reason}",
        )
    elif sequential is not None and sequential.batch.at_horizon and not sequential.warming:
        # Only a spec without SLOs is still undecided here, and nothing can justify promoting it.
        _roll_back(spec, b, stable, candidate, "HorizonReached", f"undecided at the horizon: {reason}")
    elif sequential is not None and sequential.warming:
        # Warm-up looks count as evidence for nothing, and so neither against the inconclusive limit.
        b.update(inconclusive_checks=0)
        b.condition(
            PROGRESSING, "True", "WarmingUp", f"holding {candidate} at {b.status.candidate_weight}%: {reason}"
        )
    elif verdict == Verdict.INCONCLUSIVE and (
        sequential.data_missing and not sequential.passes_step
        if sequential is not None
        else _data_missing(results)
    ):
        _inconclusive(spec, b, stable, candidate, reason)
    else:
        b.update(inconclusive_checks=0)
        passes = sequential.passes_step if sequential is not None else verdict == Verdict.PASS
        if passes:
            _maybe_advance(spec, b, stable, candidate, results, observation.end)
        else:
            _gathering(spec, b, stable, candidate, reason)


def _plan(
    spec: LLMDeploymentSpec,
    b: Builder,
    candidate: str,
    stable: str,
    sequential: SequentialEvaluation,
    window: Window,
    observation: Observation,
) -> None:
    """status.plan and the Planned condition: per SLO, the canary requests and minutes a decision should
    take at this traffic. Once warm (normally still in the first step), a Warning says when the horizon
    is too short for them."""
    minutes = (observation.end - observation.start).total_seconds() / 60
    seen = [window.variants[name].requests for name in (candidate, stable)]
    total = sum(value for value in seen if value is not None and math.isfinite(value))
    steps = [weight for weight in spec.strategy.steps if weight < 100] or [100]
    weight = steps[-1] / 100
    per_minute = total * weight / minutes if minutes > 0 and total > 0 else None
    started = b.status.rollout_started_at or b.status.step_started_at or b.now
    left = (spec.strategy.max_duration - (b.now - started)).total_seconds() / 60
    horizon = spec.strategy.max_duration.total_seconds() / 60
    judged = [
        (w.eval_passed or 0.0) + (w.eval_failed or 0.0)
        for w in (window.variants[candidate], window.variants[stable])
    ]
    feedback = [
        (w.feedback_up or 0.0) + (w.feedback_down or 0.0)
        for w in (window.variants[candidate], window.variants[stable])
    ]
    per_request = {"quality": sum(judged) / total, "feedback": sum(feedback) / total} if total > 0 else {}
    plans = plan(
        sequential.batch,
        miss_rate=spec.analysis.miss_rate,
        candidate_requests_per_minute=per_minute,
        exposure_per_request=per_request,
        weight=weight,
        minutes_left=max(left, 0.0),
        horizon_minutes=horizon,
    )
    needed = horizon_needed(plans, spec.analysis.false_rollback_rate, spec.analysis.miss_rate)
    summary = "; ".join(p.describe() for p in plans)
    # Without a forecast neither field; beyond a week (no horizon searched keeps the errors within
    # the rates) only the text.
    forecast: dict[str, object] = {}
    warned_for = set(b.status.plan.get("warnedFor", ()))  # the SLOs a HorizonTooShort Warning named
    if needed is not None:
        forecast["neededHorizon"] = _horizon_text(needed)
        if math.isfinite(needed):
            forecast["neededMinutes"] = round(needed, 1)
    b.update(
        plan={
            "weight": steps[-1],
            "minutesLeft": round(max(left, 0.0), 1),
            **forecast,
            "slos": {p.slo: p.to_status() for p in plans},
            "summary": summary,
        }
    )
    too_long = [p for p in plans if p.expected_minutes is not None and p.expected_minutes > left]
    # The horizon's rule errs more often than the error rates allow: the SLOs' tests would often
    # still be open then, at this traffic, and go the wrong way.
    errs = needed is not None and needed > horizon
    if sequential.warming:
        return
    if too_long or errs:
        reasons = [p.describe() for p in too_long]
        named = {p.slo for p in too_long}
        if errs:
            alpha, beta = spec.analysis.false_rollback_rate, spec.analysis.miss_rate
            erring = [
                (p.slo, text)
                for p in plans
                if p.errs_at_horizon(alpha, beta) and (text := p.describe_horizon())
            ]
            reasons += [text for _, text in erring]
            named |= {slo for slo, _ in erring}
            assert needed is not None
            reasons.append(
                f"a horizon of {_horizon_text(needed)} would keep them within falseRollbackRate {alpha:g}"
                f" and missRate {beta:g}"
            )
        message = (
            f"the horizon ({format_duration(spec.strategy.max_duration)}) is too short at this traffic: "
            + "; ".join(reasons)
            + "; raise strategy.maxDuration or traffic, or loosen the SLO"
        )
        b.condition(PLAN, "False", "HorizonTooShort", message)
        # Said when the horizon falls short, and again when an SLO not named yet would err: at low
        # traffic quality's forecast comes only once enough of stable's verdicts are in.
        if named - warned_for:
            b.event("Warning", "HorizonTooShort", message)
        b.update(plan={**b.status.plan, "warnedFor": sorted(warned_for | named)})
    else:
        b.condition(PLAN, "True", "Planned", summary or "no SLO test open")


def _horizon_text(minutes: float) -> str:
    return (
        format_duration(timedelta(minutes=math.ceil(minutes)))
        if math.isfinite(minutes)
        else "more than a week"
    )


def _threshold(
    spec: LLMDeploymentSpec, stable: str, candidate: str, window: Window
) -> tuple[Verdict, list[SLOResult], str]:
    """Flagger/Argo-style: this window's values against the SLOs' bounds."""
    pricing = spec.variant(candidate).pricing
    results = evaluate_variant(
        spec.slos, window.variants[candidate], pricing, baseline=window.variants[stable]
    )
    verdict = worst(r.verdict for r in results)
    reason = "; ".join(r.message for r in results if r.verdict == verdict) or "no SLOs configured"
    return verdict, results, reason


def at_horizon(spec: LLMDeploymentSpec, status: LLMDeploymentStatus, now: datetime) -> bool:
    started = status.rollout_started_at or status.step_started_at
    return started is not None and now - started >= spec.strategy.max_duration


def _sequential(
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    stable: str,
    candidate: str,
    window: Window,
    now: datetime,
) -> SequentialEvaluation:
    steps = spec.strategy.steps
    return evaluate_sequential(
        spec.slos,
        window,
        candidate=candidate,
        stable=stable,
        state=load_state(status.analysis.get("sequential")),
        false_rollback_rate=spec.analysis.false_rollback_rate,
        miss_rate=spec.analysis.miss_rate,
        pricing=spec.variant(candidate).pricing,
        candidate_weight=status.candidate_weight,
        final_step=status.step + 1 >= len(steps) or steps[status.step + 1] >= 100,
        at_horizon=at_horizon(spec, status, now),
        horizon=format_duration(spec.strategy.max_duration),
        # Two intervals of warm-up: 2 minutes at the default 1m interval, seconds in a fast test loop.
        # ... plus a scrape interval: an exact read starts at the last scrape before its window, so the
        # first window after two intervals would otherwise still hold the warm-up's last requests.
        config=SequentialConfig(
            warmup_seconds=2 * spec.strategy.interval.total_seconds()
            + (spec.metrics.prometheus.scrape_interval.total_seconds() if spec.metrics.prometheus else 0.0)
        ),
    )


def _data_missing(results: Sequence[SLOResult]) -> bool:
    """An inconclusive result without a value lacks data (missing series, NaN, no requests); one with a
    value only lacks evidence yet, which more traffic will bring."""
    return not results or any(r.verdict == Verdict.INCONCLUSIVE and r.value is None for r in results)


def _failed(
    spec: LLMDeploymentSpec, b: Builder, stable: str, candidate: str, results: Sequence[SLOResult]
) -> None:
    breaches = "; ".join(_naming_the_slo(r) for r in results if r.verdict == Verdict.FAIL)
    failed = b.status.failed_checks + 1
    b.update(failed_checks=failed, inconclusive_checks=0)
    # A sequential test that crossed its boundary has decided; only threshold checks get a failure budget.
    limit = spec.analysis.failure_threshold if spec.analysis.method == "threshold" else 1
    b.event("Warning", "SLOBreached", f"{breaches} (failed check {failed}/{limit})")
    if failed >= limit:
        _roll_back(spec, b, stable, candidate, "SLOBreached", breaches)


def _naming_the_slo(result: SLOResult) -> str:
    """Events must say which SLO decided; prefix the message when it does not already."""
    family = result.slo.split(".")[0]
    return result.message if family.lower() in result.message.lower() else f"{result.slo}: {result.message}"


def _inconclusive(spec: LLMDeploymentSpec, b: Builder, stable: str, candidate: str, why: str) -> None:
    count = b.status.inconclusive_checks + 1
    limit = spec.analysis.inconclusive_limit
    b.update(inconclusive_checks=count)
    message = f"holding {candidate} at {b.status.candidate_weight}%: inconclusive ({count}/{limit}): {why}"
    if count >= limit:
        _roll_back(
            spec, b, stable, candidate, "InconclusiveLimit", f"{count} inconclusive analyses in a row: {why}"
        )
        return
    b.condition(PROGRESSING, "True", "Inconclusive", message)
    b.event("Warning", "AnalysisInconclusive", message)


def _gathering(spec: LLMDeploymentSpec, b: Builder, stable: str, candidate: str, why: str) -> None:
    """Healthy so far but not yet shown within the SLOs: hold, up to the step timeout."""
    started = b.status.step_started_at or b.now
    waited = b.now - started
    timeout = spec.strategy.max_step_duration
    if timeout is not None and waited >= timeout:
        _roll_back(
            spec,
            b,
            stable,
            candidate,
            "StepTimeout",
            f"not shown within SLOs after {format_duration(waited)} at {b.status.candidate_weight}%: {why}",
        )
        return
    b.condition(
        PROGRESSING,
        "True",
        "GatheringEvidence",
        f"holding {candidate} at {b.status.candidate_weight}%: {why}",
    )


def _maybe_advance(
    spec: LLMDeploymentSpec,
    b: Builder,
    stable: str,
    candidate: str,
    results: Sequence[SLOResult],
    window_end: datetime,
) -> None:
    if b.status.applied_weights and b.status.applied_weights != b.status.weights:
        # The step's weights are not on the route yet (the reconcile that decided them died before
        # the route write, or the route refuses them): the step has not begun, so it cannot end.
        return
    needed = spec.strategy.min_requests
    short = {v: n for v, n in b.status.step_requests.items() if n < needed}
    started = b.status.step_started_at or b.now
    if short:
        counts = ", ".join(f"{v} {n:.0f}/{needed}" for v, n in sorted(short.items()))
        b.condition(PROGRESSING, "True", "WaitingForRequests", f"SLOs met; requests this step: {counts}")
        return
    # A step lasts an interval, judged at a look. Its window ends on a boundary, and the reconcile
    # that started the step ran a moment after one: that moment (up to MAX_STEP_SLACK) is forgiven,
    # so a step takes one interval, not a look more. A step started late (a restart) waits its interval.
    cadence = look_interval(spec)
    slack = min(started - boundary(started, cadence), cadence / 4, MAX_STEP_SLACK)
    if window_end - started < spec.strategy.interval - slack:
        return
    # Each SLO's verdict in a line; the tests' details are in status.analysis, and would make the
    # Event too long to read in `kubectl describe`.
    evidence = "; ".join(r.headline for r in results) or "no SLOs configured"
    steps = spec.strategy.steps
    following = b.status.step + 1
    if following >= len(steps) or steps[following] >= 100:
        _promote(spec, b, candidate, f"{candidate} promoted after {len(steps)} steps: {evidence}")
        return
    weight = steps[following]
    b.update(
        step=following,
        candidate_weight=weight,
        weights=split(spec, stable, candidate, weight),
        step_started_at=b.now,
        failed_checks=0,
        step_requests={},
    )
    message = f"{candidate} to {weight}% (step {following + 1}/{len(steps)}): {evidence}"
    b.condition(PROGRESSING, "True", "StepAdvanced", message)
    b.event("Normal", "StepAdvanced", message)


def reject(
    reason: str, message: str, status: LLMDeploymentStatus, generation: int | None, now: datetime
) -> Outcome:
    """A spec the operator cannot act on: say why once, and keep routing as it was."""
    already_said = (c := status.condition(READY)) is not None and c.message == message
    b = Builder(status, generation, now)
    b.update(phase=Phase.FAILED)
    b.condition(READY, "False", reason, message)
    if not already_said:
        b.event("Warning", reason, message)
    return b.outcome()
