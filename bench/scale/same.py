"""Batched reads decide as unbatched ones: every LLMDeployment's window read both ways, compared.

At the end of a rolling point, one closed window that Prometheus has fully ingested is read for the
whole fleet through the operator's batched path (reconciler.batched_read, grouped as the operator's
MetricsReads groups them, each group read by its own `run`: metrics.batch.read_batch), and for each
LLMDeployment alone (reconciler.read_window, every read with LLMROLLOUT_BATCH_READS=0). The fleet
exports the same series for every LLMDeployment, told apart by one label, so a batch that gave one
deployment another's series would change its counts. Then the state machine (rollout.reconcile, the
pure function the reconciler calls) decides from each observation, from the same spec and status at
the same instant, and the decisions are compared.

The comparison and its summary are pure (tested in tests/unit/bench/test_bench_same.py); read_both
is the I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import httpx
from kubernetes import client

from llmrollout import rollout
from llmrollout.analysis.observations import VariantWindow
from llmrollout.api import LLMDeploymentSpec, LLMDeploymentStatus
from llmrollout.handlers.reads import Batched
from llmrollout.handlers.reconciler import Clients, batched_read, checked_spec, decision_state, read_window
from llmrollout.rollout.machine import boundary

# Past a window's end, before it counts as fully ingested: a scrape interval (the last scrape in it
# may have started just before the end) and this margin for the scrape to be stored.
INGESTED_MARGIN_SECONDS = 5.0
# Unbatched reads at once: 1,000 of them are about 10k queries to the local Prometheus.
ALONE_CONCURRENCY = 4
# Deployments whose difference is spelled out in the notes (all are named).
DETAILED = 3
_VALUE_CHARS = 80
_WHY_CHARS = 400  # of each detailed deployment's differences, in the notes


@dataclass(frozen=True)
class Compared:
    """One LLMDeployment's window read both ways and the decisions made from each."""

    name: str
    same_window: bool
    same_decision: bool
    why: str = ""  # what differed, in words ("" when nothing did)


@dataclass(frozen=True)
class Sameness:
    compared: int
    windows: int  # equal windows
    decisions: int  # equal decisions
    differed: tuple[Compared, ...]  # those with any difference, in name order

    @property
    def all_same(self) -> bool:
        return self.compared > 0 and self.windows == self.decisions == self.compared


def ingested_window(now: datetime, interval: float, scrape: float) -> tuple[datetime, datetime]:
    """The latest look-interval-aligned window (as the operator's looks are) that ended at least a
    scrape interval and a margin before `now`."""
    cadence = timedelta(seconds=interval)
    end = boundary(now - timedelta(seconds=scrape + INGESTED_MARGIN_SECONDS), cadence)
    return end - cadence, end


def decision(outcome: rollout.Outcome) -> dict[str, Any]:
    """What a look decided: the status but its evidence (decision_state, the operator's own test of a
    write that matters: phase, step, weights, counts of failed checks, condition reasons), the
    verdict, and the Events and history entries by reason (their messages quote the evidence)."""
    state = decision_state(outcome.status)
    state["history"] = [(entry["time"], entry["reason"]) for entry in state.get("history") or []]
    return {
        "state": state,
        "verdict": outcome.status.analysis.get("verdict"),
        "events": [(event.type, event.reason) for event in outcome.events],
    }


def window_difference(batched: rollout.Observation, alone: rollout.Observation) -> str:
    """How the batched observation differs from the one read alone, in words ("" when equal). Two
    observations without a window are not equal: nothing was compared."""
    if batched.window is None or alone.window is None:
        return f"batched: {_read_of(batched)}; alone: {_read_of(alone)}"
    a, b = batched.window, alone.window
    if a == b:
        return ""
    parts = []
    for name in sorted(a.variants.keys() | b.variants.keys()):
        mine, own = a.variants.get(name), b.variants.get(name)
        if mine is None or own is None:
            parts.append(f"{name} read {'alone' if mine is None else 'batched'} only")
            continue
        parts += [
            f"{name}.{f.name} {_short(getattr(mine, f.name))} != {_short(getattr(own, f.name))}"
            for f in fields(VariantWindow)
            if getattr(mine, f.name) != getattr(own, f.name)
        ]
    if a.problems != b.problems:
        parts.append(f"problems {_short(a.problems)} != {_short(b.problems)}")
    if (a.start, a.end, a.scrape_interval) != (b.start, b.end, b.scrape_interval):
        parts.append(f"window {a.start}-{a.end} != {b.start}-{b.end}")
    return "; ".join(parts) or "the windows differ"


def _empty(observation: rollout.Observation) -> str:
    """Why an equal window proves nothing ("" when it does): a variant without requests in it (its
    series missing, or no traffic) reads alike whichever deployment's series a batch gave it."""
    window = observation.window
    empty = sorted(name for name, v in window.variants.items() if not v.requests) if window else []
    return f"equal, but no requests for {', '.join(empty)}: nothing to tell apart" if empty else ""


def _read_of(observation: rollout.Observation) -> str:
    return "a window" if observation.window is not None else f"unavailable ({observation.unavailable})"


def _short(value: object) -> str:
    return _cut(repr(value), _VALUE_CHARS)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compare(
    name: str,
    batched: rollout.Observation,
    alone: rollout.Observation,
    decide: Callable[[rollout.Observation], rollout.Outcome],
) -> Compared:
    """`decide` is the state machine from one prior state at one instant: called once per observation."""
    window = window_difference(batched, alone) or _empty(alone)
    by_batch, by_own = decision(decide(batched)), decision(decide(alone))
    why = [f"window: {window}"] if window else []
    if by_batch != by_own:
        why.append(f"decision: batched {_decided(by_batch)}, alone {_decided(by_own)}")
    return Compared(name, not window, by_batch == by_own, "; ".join(why))


def _decided(summary: dict[str, Any]) -> str:
    state = summary["state"]
    events = ",".join(reason for _, reason in summary["events"]) or "no Event"
    return f"{summary['verdict']} ({state.get('phase')}, step {state.get('step')}, {events})"


def tally(results: Sequence[Compared]) -> Sameness:
    return Sameness(
        compared=len(results),
        windows=sum(r.same_window for r in results),
        decisions=sum(r.same_decision for r in results),
        differed=tuple(sorted((r for r in results if r.why), key=lambda r: r.name)),
    )


def summary(compared: int, windows: int, decisions: int) -> str:
    return f"same as unbatched: windows {windows}/{compared}, decisions {decisions}/{compared}"


def differences_note(sameness: Sameness) -> str:
    """Every deployment that differed, by name; what differed for the first few."""
    if not sameness.differed:
        return ""
    names = ", ".join(r.name for r in sameness.differed)
    details = "; ".join(f"{r.name}: {_cut(r.why, _WHY_CHARS)}" for r in sameness.differed[:DETAILED])
    return f"differ from unbatched reads: {names} ({details})"


# --- I/O: the fleet's objects, Prometheus ------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    batched_s: float
    alone_s: float


def read_both(
    api: client.ApiClient,
    group: str,
    version: str,
    plural: str,
    namespace: str,
    now: datetime,
    interval: float,
    scrape: float,
) -> tuple[list[Compared], Timings]:
    """Every LLMDeployment of `namespace`: its ingested window read batched and alone, and the decisions
    from its current spec and status at `now`."""
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(group, version, namespace, plural)
    start, end = ingested_window(now, interval, scrape)
    # The operator's own client settings for window reads (handlers/llmdeployment.py).
    with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0)) as http:
        clients = Clients(api, http)
        fleet = []
        for obj in listed["items"]:
            spec = checked_spec(obj["spec"], http, namespace)
            status = LLMDeploymentStatus.model_validate(obj.get("status") or {})
            fleet.append((obj["metadata"], spec, status, rollout.watched(spec, status)))

        began = time.monotonic()
        batched = _read_batched(
            [batched_read(http, spec, namespace, variants, start, end) for _, spec, _, variants in fleet],
            start,
            end,
        )
        batched_s = time.monotonic() - began

        began = time.monotonic()
        with ThreadPoolExecutor(ALONE_CONCURRENCY) as pool:
            alone = list(
                pool.map(
                    lambda item: read_window(clients, item[1], namespace, item[3], start, end),
                    fleet,
                )
            )
        alone_s = time.monotonic() - began

    results = []
    for (meta, spec, status, _), mine, own in zip(fleet, batched, alone, strict=True):

        def decide(
            observation: rollout.Observation,
            spec: LLMDeploymentSpec = spec,
            status: LLMDeploymentStatus = status,
            generation: int | None = meta.get("generation"),
        ) -> rollout.Outcome:
            return rollout.reconcile(spec, status, generation, now, observation)

        results.append(compare(meta["name"], mine, own, decide))
    return results, Timings(round(batched_s, 1), round(alone_s, 1))


def _read_batched(
    reads: Sequence[Batched | None], start: datetime, end: datetime
) -> list[rollout.Observation]:
    """Each read's observation from its group's batch, as MetricsReads runs a gathered batch (all of a
    group at once here: the largest batch the operator could gather). A read that cannot join a batch
    has no batched observation."""
    groups: dict[Hashable, list[tuple[int, Batched]]] = {}
    for i, read in enumerate(reads):
        if read is not None:
            groups.setdefault(read.group, []).append((i, read))
    out = [rollout.Observation(start, end, unavailable="not batched by the operator") for _ in reads]
    for joined in groups.values():
        run = joined[0][1].run
        for (i, _), observation in zip(joined, run([read.member for _, read in joined]), strict=True):
            out[i] = observation
    return out
