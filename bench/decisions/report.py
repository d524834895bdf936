"""From outcomes to rows, and from rows to decisions.md and decisions.json."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.decisions.model import (
    CAP_MINUTES,
    COST_MAX_USD,
    ERROR_RATE_MAX,
    FALSE_ROLLBACK_RATE,
    JUDGED_SHARE,
    MIN_REQUESTS,
    QUALITY_MAX_DROP,
    SCRAPE_SECONDS,
    STEPS,
    TTFT_P95_MAX,
    WARMUP_SECONDS,
    Scenario,
)
from bench.decisions.policies import OracleModel
from bench.decisions.rollout import PROMOTED, ROLLED_BACK, UNDECIDED, Outcome
from bench.decisions.stats import upper_bound, wald_bound

Row = dict[str, Any]
OURS = "ours (sequential)"
CALIBRATED = "threshold-calibrated"
ORACLE = "oracle SPRT"
# Targets at this rate, on the regressions the oracle decides within this many minutes.
TARGET_RPS = 10.0
# The canary requests served at the first step before the sequential tests count anything.
WARMUP_CANARY_REQUESTS = WARMUP_SECONDS * TARGET_RPS * STEPS[0] / 100
ORACLE_MINUTES = 30.0


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _stats(values: np.ndarray) -> tuple[float | None, float | None, float | None]:
    if len(values) == 0:
        return None, None, None
    return (
        _finite(float(np.mean(values))),
        _finite(float(np.median(values))),
        _finite(float(np.quantile(values, 0.9))),
    )


def summarise(
    policy: str,
    scenario: Scenario,
    rps: float,
    outcome: Outcome,
    model: OracleModel | None,
    alpha: float | None,
) -> Row:
    """One row of the table. `alpha` is the false rollback rate Wald's bound is taken at (the
    policy's own, measured on identical versions at this rps); None on healthy scenarios."""
    n = len(outcome.decision)
    rolled_back = outcome.decision == ROLLED_BACK
    promoted = outcome.decision == PROMOTED
    undecided = outcome.decision == UNDECIDED
    correct = rolled_back if scenario.regression else promoted
    requests = _stats(outcome.requests[correct])
    minutes = _stats(outcome.minutes[correct])
    decided_minutes = np.where(undecided, np.inf, outcome.minutes)
    row: Row = {
        "policy": policy,
        "scenario": scenario.name,
        "family": scenario.family,
        "regression": scenario.regression,
        "rps": rps,
        "replicates": n,
        "false_rollback_rate": None,
        "false_rollback_upper95": None,
        "miss_rate": None,
        "undecided_rate": float(undecided.mean()),
        "correct_rate": float(correct.mean()),
        "mean_requests": requests[0],
        "median_requests": requests[1],
        "p90_requests": requests[2],
        "mean_minutes": minutes[0],
        "median_minutes": minutes[1],
        "p90_minutes": minutes[2],
        "median_decision_minutes": _finite(float(np.median(decided_minutes))),
        "bad_requests_before_rollback": None,
        "wald_bound_requests": None,
        "wald_ratio": None,
        "wald_alpha": None,
        "wald_beta": None,
    }
    if not scenario.regression:
        k = int(rolled_back.sum())
        row["false_rollback_rate"] = k / n
        row["false_rollback_upper95"] = upper_bound(k, n)
        return row
    miss = float(promoted.mean())
    row["miss_rate"] = miss
    if scenario.family != "tokens" and rolled_back.any():
        row["bad_requests_before_rollback"] = float(outcome.bad[rolled_back].mean())
    if model is not None and alpha is not None:
        bound = wald_bound(max(alpha, 1e-12), miss, model.kl_per_request())
        row["wald_alpha"], row["wald_beta"] = alpha, miss
        row["wald_bound_requests"] = _finite(bound)
        if requests[0] is not None and bound > 0:
            row["wald_ratio"] = requests[0] / bound
    return row


def _fmt(value: Any, digits: int = 0, percent: bool = False) -> str:
    if value is None:
        return "-"
    if percent:
        return f"{100 * value:.{max(digits, 1)}f}%"
    if isinstance(value, float) and not value.is_integer() and digits:
        return f"{value:.{digits}f}"
    return f"{value:,.0f}" if abs(value) >= 1 or value == 0 else f"{value:.2g}"


def _frr(row: Row) -> str:
    if row["false_rollback_rate"] is None:
        return ""
    return f"{_fmt(row['false_rollback_rate'], 2, True)} (≤{_fmt(row['false_rollback_upper95'], 2, True)})"


def _triple(row: Row, what: str) -> str:
    values = [row[f"{kind}_{what}"] for kind in ("mean", "median", "p90")]
    if values[0] is None:
        return "-"
    digits = 1 if what == "minutes" else 0
    return " / ".join(_fmt(v, digits) for v in values)


def _table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| scenario | policy | false rollback (upper 95%) | miss | undecided | canary requests to correct"
        " decision: mean / median / p90 | minutes: mean / median / p90 | bad requests before rollback"
        " | Wald bound | mean / Wald |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row["wald_ratio"]
        lines.append(
            "| "
            + " | ".join(
                [
                    row["scenario"],
                    row["policy"],
                    _frr(row),
                    _fmt(row["miss_rate"], 1, True) if row["miss_rate"] is not None else "",
                    _fmt(row["undecided_rate"], 1, True),
                    _triple(row, "requests"),
                    _triple(row, "minutes"),
                    _fmt(row["bad_requests_before_rollback"]),
                    _fmt(row["wald_bound_requests"]),
                    "-" if ratio is None else f"{ratio:.2f}",
                ]
            )
            + " |"
        )
    return lines


def _find(rows: Sequence[Row], policy: str, scenario: str, rps: float) -> Row | None:
    for row in rows:
        if row["policy"] == policy and row["scenario"] == scenario and row["rps"] == rps:
            return row
    return None


def targets(rows: Sequence[Row]) -> list[str]:
    """The acceptance targets for our policy, each met or missed and by how much."""
    lines: list[str] = []
    ours_healthy = [r for r in rows if r["policy"] == OURS and not r["regression"]]
    worst = sorted(ours_healthy, key=lambda r: r["false_rollback_upper95"] or 0.0, reverse=True)
    missed = [
        r
        for r in ours_healthy
        if r["false_rollback_rate"] > FALSE_ROLLBACK_RATE or r["false_rollback_upper95"] >= 0.015
    ]
    if not ours_healthy:
        lines.append("- False rollback rate: not measured (no healthy scenario in this run).")
    else:
        top = worst[0]
        state = (
            "**met**" if not missed else f"**missed** in {len(missed)} of {len(ours_healthy)} healthy cells"
        )
        lines.append(
            f"- False rollback rate <= 1% with upper 95% bound < 1.5% on every healthy scenario and rate: "
            f"{state}; worst: {top['scenario']} at {top['rps']:g} rps, "
            f"{_fmt(top['false_rollback_rate'], 2, True)}"
            f" (upper {_fmt(top['false_rollback_upper95'], 2, True)})."
        )
        for r in missed:
            lines.append(
                f"  - missed: {r['scenario']} at {r['rps']:g} rps: {_fmt(r['false_rollback_rate'], 2, True)}"
                f" (upper {_fmt(r['false_rollback_upper95'], 2, True)}), "
                f"{100 * (r['false_rollback_upper95'] - 0.015):+.2f} points over the 1.5% bound"
            )
    regressions = sorted({r["scenario"] for r in rows if r["regression"] and r["rps"] == TARGET_RPS})
    in_scope: list[str] = []
    for name in regressions:
        oracle = _find(rows, ORACLE, name, TARGET_RPS)
        if oracle is not None and (oracle["median_decision_minutes"] or math.inf) <= ORACLE_MINUTES:
            in_scope.append(name)
    lines.append(
        f"- In scope at {TARGET_RPS:g} rps (regressions whose oracle SPRT's median time to decide is"
        f" <= {ORACLE_MINUTES:g} min): {', '.join(in_scope) if in_scope else 'none'}."
    )
    for title, check in (
        ("Miss rate <= 5%", _miss_check),
        ("Mean canary requests <= 2x Wald's bound", _wald_check),
        (
            "vs threshold-calibrated: >= 3x fewer canary requests to roll back, or >= 3x fewer misses",
            _vs_check,
        ),
    ):
        results = [check(rows, name) for name in in_scope]
        failures = [text for ok, text in results if not ok]
        state = "**met**" if not failures and results else ("**missed**" if failures else "not measured")
        lines.append(
            f"- {title}: {state}" + (f" ({len(failures)} of {len(results)} scenarios)" if failures else "")
        )
        lines.extend(f"  - {'ok' if ok else 'MISSED'}: {text}" for ok, text in results)
    return lines


def _miss_check(rows: Sequence[Row], name: str) -> tuple[bool, str]:
    row = _find(rows, OURS, name, TARGET_RPS)
    if row is None:
        return False, f"{name}: not run"
    miss = row["miss_rate"]
    text = f"{name}: miss {_fmt(miss, 1, True)} (undecided {_fmt(row['undecided_rate'], 1, True)})"
    if miss > 0.05:
        text += f", {100 * (miss - 0.05):.1f} points over"
    return miss <= 0.05, text


def _wald_check(rows: Sequence[Row], name: str) -> tuple[bool, str]:
    row = _find(rows, OURS, name, TARGET_RPS)
    if row is None or row["wald_ratio"] is None:
        return False, f"{name}: no rollbacks to measure"
    ratio = row["wald_ratio"]
    text = f"{name}: {_fmt(row['mean_requests'])} vs bound {_fmt(row['wald_bound_requests'])} = {ratio:.2f}x"
    if ratio > 2:
        text += f" ({ratio / 2:.2f}x over the target)"
        # What no policy reading these windows could beat: the oracle's own ratio, and the canary
        # requests of the warm-up, during which nothing counts.
        oracle = _find(rows, ORACLE, name, TARGET_RPS)
        if oracle is not None and oracle["mean_requests"] and oracle["wald_bound_requests"]:
            text += (
                f"; the oracle SPRT on the same windows: {_fmt(oracle['mean_requests'])}"
                f" = {oracle['mean_requests'] / oracle['wald_bound_requests']:.2f}x its bound"
            )
        text += f"; our warm-up alone serves {_fmt(WARMUP_CANARY_REQUESTS)} canary requests"
    return ratio <= 2, text


def _vs_check(rows: Sequence[Row], name: str) -> tuple[bool, str]:
    ours = _find(rows, OURS, name, TARGET_RPS)
    other = _find(rows, CALIBRATED, name, TARGET_RPS)
    if ours is None or other is None:
        return False, f"{name}: not run"
    parts = []
    request_factor = None
    if ours["mean_requests"] and other["mean_requests"]:
        request_factor = other["mean_requests"] / ours["mean_requests"]
        parts.append(
            f"requests {_fmt(other['mean_requests'])} vs {_fmt(ours['mean_requests'])}"
            f" = {request_factor:.2f}x"
        )
    elif ours["mean_requests"] and not other["mean_requests"]:
        parts.append("threshold-calibrated never rolled back")
        request_factor = math.inf
    ours_miss = ours["miss_rate"] + ours["undecided_rate"]
    other_miss = other["miss_rate"] + other["undecided_rate"]
    miss_factor = (
        math.inf if ours_miss == 0 and other_miss > 0 else (other_miss / ours_miss if ours_miss else 1.0)
    )
    parts.append(
        f"not rolled back (miss + undecided) {_fmt(other_miss, 1, True)} vs {_fmt(ours_miss, 1, True)}"
        f" = {'inf' if math.isinf(miss_factor) else f'{miss_factor:.2f}'}x"
    )
    ok = (request_factor is not None and request_factor >= 3) or miss_factor >= 3
    return ok, f"{name}: " + "; ".join(parts)


def _outcome(row: Row | None) -> str:
    if row is None:
        return "-"
    wrong = row["false_rollback_rate"] if not row["regression"] else row["miss_rate"]
    label = "false rollback" if not row["regression"] else "miss"
    return (
        f"{label} {_fmt(wrong, 1, True)}, undecided {_fmt(row['undecided_rate'], 1, True)}, "
        f"{_fmt(row['mean_requests'])} req / {_fmt(row['median_minutes'], 1)} min"
    )


def headline(rows: Sequence[Row], rps: float = TARGET_RPS) -> list[str]:
    """Ours against threshold-calibrated and the oracle at one rate, one line per scenario."""
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows if r["rps"] == rps))
    lines = [
        "| scenario | ours | threshold-calibrated | oracle SPRT |",
        "|---|---|---|---|",
    ]
    for name in scenarios:
        cells = [_outcome(_find(rows, policy, name, rps)) for policy in (OURS, CALIBRATED, ORACLE)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write(
    out: Path,
    rows: Sequence[Row],
    command: str,
    settings: Mapping[str, Any],
    seconds: float,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "decisions.json").write_text(json.dumps(list(rows), indent=1) + "\n")
    rates = sorted({r["rps"] for r in rows})
    lines = [
        "# Decision benchmark",
        "",
        f"Made by `{command}` in {seconds / 60:.1f} minutes "
        f"({settings['replicates']} replicates per cell, seed {settings['seed']}, counters read as "
        f"`{settings['counters']}`).",
        "",
        "## Setup",
        "",
        f"- Rollout: candidate weights {' -> '.join(f'{s}%' for s in STEPS)} -> promoted; 1-minute"
        f" intervals; a step passes on a passing window once it has {MIN_REQUESTS} requests per version;"
        f" rollouts undecided after {CAP_MINUTES} minutes count as undecided.",
        "- Stable: 1% errors; TTFT lognormal (sigma 0.5) with p95 0.5 s;"
        f" {100 * JUDGED_SHARE:.0f}% of successful answers judged pass/fail (90% pass), verdicts arriving"
        " 1 or 2 intervals late; gamma token counts (500 in, 300 out).",
        f"- SLOs for every policy: errorRate max {ERROR_RATE_MAX}, quality maxDropVsStable"
        f" {QUALITY_MAX_DROP}, ttft p95 {TTFT_P95_MAX}s, costPerRequest maxUSD {COST_MAX_USD}"
        " (stable ~64% of it).",
        f"- Counters: `increase()` over the 1-minute window with {SCRAPE_SECONDS:g} s scrapes, as the"
        " operator queries it (3 of 4 scrape slots, extrapolated x4/3), unless the line above says `exact`.",
        "- Policies: threshold (fixed SLO bounds per window, failure limit 1/2/3); threshold-calibrated"
        " (limit 1, bounds set on separate healthy traces so that its false rollback rate on identical"
        " versions equals ours, at least 0.1%); Kayenta (Mann-Whitney 98%, tolerance 0.25, growing window,"
        " pass 95, marginal 75 holds); ours (`evaluate_sequential`, falseRollbackRate 1%, default"
        " SequentialConfig: steps before the last pass on no evidence of harm, the last one needs every"
        " upper bound within its SLO; TTFT's rate-ratio tests count above the SLO's bucket edge and above"
        " the edge nearest stable's p95; the candidate's first 120 s are a warm-up that counts as evidence"
        " only for a severe breach); oracle (Wald's"
        " SPRT of the true rates on the regressed metric, exact counts, a = 1%, b = 5%).",
        "- Correct decision: promotion on healthy scenarios, rollback on regressions; requests and minutes"
        " are over replicates that decided correctly. Bad requests: errors, failed answers, or responses"
        " slower than stable's p95 (0.5 s) that the candidate served before its rollback.",
        "- Wald bound: canary requests any test needs at the policy's achieved error rates (a = its false"
        " rollback upper bound on identical versions at that rate, b = its miss rate), from the information"
        " per canary request of the regressed metric (errors; judged verdicts, 20% of answers; all of the"
        " TTFT histogram's buckets; gamma output tokens).",
        "",
        f"## Headline at {TARGET_RPS:g} requests/s",
        "",
        "Wrong decisions (false rollbacks on healthy scenarios, promotions of regressions), undecided share"
        " at the cap, and mean canary requests / median minutes to the correct decision.",
        "",
        *headline(rows),
        "",
        "## Targets (our policy)",
        "",
        *targets(rows),
        "",
    ]
    for rps in rates:
        lines += [f"## {rps:g} requests/s", "", *_table([r for r in rows if r["rps"] == rps]), ""]
    (out / "decisions.md").write_text("\n".join(lines))
