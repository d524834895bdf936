"""`python -m bench.decisions [--quick] --out DIR`: run the decision benchmark and write its report."""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from bench.decisions.model import (
    CAP_MINUTES,
    DESIGN_POINTS,
    EXTRA_SCRAPE_SECONDS,
    FAILURE_LIMITS,
    FALSE_ROLLBACK_RATE,
    HORIZON_MINUTES,
    PLANNED_HORIZON_MINUTES,
    SCENARIOS,
    SCRAPE_SECONDS,
    TARGET_RPS,
    Scenario,
    scenario,
)
from bench.decisions.ours import OperatorPolicy
from bench.decisions.policies import (
    KayentaPolicy,
    OraclePolicy,
    OracleSetPolicy,
    Policy,
    ThresholdPolicy,
    Thresholds,
    design_point_models,
    oracle_model,
    unsteady_minutes,
)
from bench.decisions.report import CALIBRATED, ORACLE, OURS, Row, planned, summarise, write
from bench.decisions.rollout import ROLLED_BACK, Outcome, run
from bench.decisions.simulate import Trace, generate
from bench.decisions.stats import upper_bound

SEED = 20241126
IDENTICAL = "healthy: identical"
CALIBRATION_STREAM = 1_000_000  # keeps calibration traces apart from the measured ones
# Calibrating below this is noise at any affordable number of replicates; a floor makes the
# comparison, if anything, kinder to threshold-calibrated (more sensitive than ours is allowed to be).
CALIBRATION_FLOOR = 0.001


def _chunks(replicates: int, chunk: int) -> list[int]:
    sizes = [chunk] * (replicates // chunk)
    if replicates % chunk:
        sizes.append(replicates % chunk)
    return sizes


def _traces(
    item: Scenario, index: int, rps: float, replicates: int, chunk: int, seed: int, minutes: int = CAP_MINUTES
) -> list[Callable[[], Trace]]:
    return [
        partial(generate, item, rps, size, (seed, index, round(rps * 1000), c), minutes)
        for c, size in enumerate(_chunks(replicates, chunk))
    ]


def _run_all(
    policies: dict[str, Callable[[], Policy]],
    traces: Sequence[Callable[[], Trace]],
    counters: str,
    scrape_seconds: float = SCRAPE_SECONDS,
) -> dict[str, Outcome]:
    """Every policy on every chunk: each trace is generated once and replayed to all policies."""
    outcomes: dict[str, list[Outcome]] = {name: [] for name in policies}
    for make_trace in traces:
        trace = make_trace()
        for name, make in policies.items():
            outcomes[name].append(run(make(), trace, counters, scrape_seconds))
    return {name: Outcome.concatenate(parts) for name, parts in outcomes.items()}


def calibrate(maxima: np.ndarray, target: float) -> Thresholds:
    """Bounds that put each SLO at the same tail level of its per-rollout maximum on healthy traces,
    with the level chosen so that the share of rollouts with any bound exceeded is `target`."""

    def bounds(level: float) -> np.ndarray:
        return np.array(
            [np.quantile(maxima[:, k], 1.0 - level, method="higher") for k in range(maxima.shape[1])]
        )

    def rate(level: float) -> float:
        return float(np.any(maxima > bounds(level), axis=1).mean())

    low, high = 0.0, min(1.0, 4 * target)
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if rate(middle) <= target else (low, middle)
    chosen = bounds(low)
    return Thresholds(*(float(b) for b in chosen))


@dataclass(frozen=True)
class Settings:
    replicates: int
    calibration_replicates: int
    counters: str
    seed: int
    chunk: int
    scrapes: tuple[float, ...] = EXTRA_SCRAPE_SECONDS
    # requests/s -> minutes: ours also with the horizon the plan asks for at that rate
    planned_horizons: Mapping[float, int] = field(default_factory=lambda: dict(PLANNED_HORIZON_MINUTES))
    jobs: int = 1  # processes for the planned-horizon cells (their traces are long)


def _calibrated_thresholds(rps: float, target: float, settings: Settings) -> Thresholds:
    """threshold-calibrated's bounds for this rate, from healthy traces kept apart from the measured."""
    recorder = ThresholdPolicy(
        "calibration", 1, Thresholds(math.inf, math.inf, math.inf, math.inf), record=True
    )
    maxima = []
    identical = scenario(IDENTICAL)
    for make_trace in _traces(
        identical, CALIBRATION_STREAM, rps, settings.calibration_replicates, settings.chunk, settings.seed
    ):
        run(recorder, make_trace(), settings.counters)
        maxima.append(recorder.maxima)
    return calibrate(np.concatenate(maxima), max(target, CALIBRATION_FLOOR))


def _oracle(item: Scenario) -> Callable[[], Policy] | None:
    """The oracle SPRT for `item`: on the regressed metric for a regression, against every family's
    design point for a healthy candidate."""
    skip = unsteady_minutes(item)
    if not item.regression:
        return partial(OracleSetPolicy, design_point_models(), skip)
    model = oracle_model(item)
    return None if model is None else partial(OraclePolicy, model, skip=skip)


def _scenario_traces(
    item: Scenario, rps: float, settings: Settings, minutes: int = CAP_MINUTES
) -> list[Callable[[], Trace]]:
    index = {s.name: i for i, s in enumerate(SCENARIOS)}
    return _traces(item, index[item.name], rps, settings.replicates, settings.chunk, settings.seed, minutes)


def _acceptance_scenarios(chosen: Sequence[Scenario]) -> list[Scenario]:
    """The healthy scenarios and the design points."""
    return [s for s in chosen if not s.regression or s.name in DESIGN_POINTS.values()]


def _run_planned_horizon(
    rps: float, chosen: Sequence[Scenario], settings: Settings, minutes: int
) -> dict[str, dict[str, Outcome]]:
    """Ours with the horizon the plan asks for at this rate, on the healthy scenarios and the design
    points: traces as long as that horizon, from the same seeds; a scenario per process with jobs > 1
    (the same outcomes: each scenario's traces come from its own seeds)."""
    policy = {planned(minutes): partial(OperatorPolicy, horizon_minutes=minutes)}
    items = _acceptance_scenarios(chosen)
    traces = [_scenario_traces(item, rps, settings, minutes) for item in items]
    counters = [settings.counters] * len(items)
    if settings.jobs > 1:
        with ProcessPoolExecutor(settings.jobs) as pool:
            outcomes = list(pool.map(_run_all, [policy] * len(items), traces, counters))
    else:
        outcomes = list(map(_run_all, [policy] * len(items), traces, counters))
    results = {item.name: outcome for item, outcome in zip(items, outcomes, strict=True)}
    frr = float((results[IDENTICAL][planned(minutes)].decision == ROLLED_BACK).mean())
    print(f"{rps:g} rps, a {minutes}-minute horizon: ours' false rollback rate {frr:.4f}", flush=True)
    return results


def _run_scrapes(
    rps: float, chosen: Sequence[Scenario], settings: Settings
) -> dict[float, dict[str, dict[str, Outcome]]]:
    """Ours at the other scrape intervals, on the scenarios the acceptance needs there: healthy ones
    and the design points; the very same traces as at the default interval."""
    wanted = _acceptance_scenarios(chosen)
    results: dict[float, dict[str, dict[str, Outcome]]] = {}
    for scrape in settings.scrapes:
        results[scrape] = {
            item.name: _run_all(
                {OURS: OperatorPolicy}, _scenario_traces(item, rps, settings), settings.counters, scrape
            )
            for item in wanted
        }
        ours_frr = float((results[scrape][IDENTICAL][OURS].decision == ROLLED_BACK).mean())
        print(f"{rps:g} rps, {scrape:g} s scrapes: ours' false rollback rate {ours_frr:.4f}", flush=True)
    return results


def _run_rate(rps: float, chosen: Sequence[Scenario], settings: Settings) -> dict[str, dict[str, Outcome]]:
    """Every policy on every chosen scenario at one rate; identical versions first, since
    threshold-calibrated is tuned to ours' false rollback rate there."""

    def traces(item: Scenario) -> list[Callable[[], Trace]]:
        return _scenario_traces(item, rps, settings)

    policies: dict[str, Callable[[], Policy]] = {
        f"threshold (limit {limit})": partial(ThresholdPolicy, f"threshold (limit {limit})", limit)
        for limit in FAILURE_LIMITS
    }
    policies["kayenta"] = KayentaPolicy
    policies[OURS] = OperatorPolicy
    identical = scenario(IDENTICAL)
    first = dict(policies)
    oracle = _oracle(identical)
    if oracle is not None:
        first[ORACLE] = oracle
    results = {IDENTICAL: _run_all(first, traces(identical), settings.counters)}
    ours_frr = float((results[IDENTICAL][OURS].decision == ROLLED_BACK).mean())
    thresholds = _calibrated_thresholds(rps, ours_frr, settings)
    print(f"{rps:g} rps: ours' false rollback rate {ours_frr:.4f}; calibrated {thresholds}", flush=True)
    calibrated: dict[str, Callable[[], Policy]] = {
        CALIBRATED: partial(ThresholdPolicy, CALIBRATED, 1, thresholds)
    }
    results[IDENTICAL].update(_run_all(calibrated, traces(identical), settings.counters))
    for item in chosen:
        if item.name == IDENTICAL:
            continue
        cell_policies = {**policies, **calibrated}
        oracle = _oracle(item)
        if oracle is not None:
            cell_policies[ORACLE] = oracle
        results[item.name] = _run_all(cell_policies, traces(item), settings.counters)
    return results


def _rows(
    rps: float,
    chosen: Sequence[Scenario],
    results: dict[str, dict[str, Outcome]],
    replicates: int,
    scrape_seconds: float = SCRAPE_SECONDS,
    horizon_minutes: int = HORIZON_MINUTES,
) -> list[Row]:
    # Wald's bound is taken at each policy's false rollback rate on identical versions: its upper
    # bound, so that noise can only make the bound smaller and the ratio larger.
    alpha = {
        name: upper_bound(int(np.sum(outcome.decision == ROLLED_BACK)), replicates)
        for name, outcome in results[IDENTICAL].items()
    }
    alpha[ORACLE] = FALSE_ROLLBACK_RATE
    rows = []
    for item in chosen:
        if item.name not in results:
            continue
        model = oracle_model(item)
        for name, outcome in results[item.name].items():
            row = summarise(name, item, rps, outcome, model, alpha.get(name) if item.regression else None)
            row["scrape_seconds"] = scrape_seconds
            row["horizon_minutes"] = horizon_minutes
            rows.append(row)
    return rows


def decision_code() -> str:
    """Where the decision code the benchmark ran comes from: the llmrollout package's checkout and
    commit (the shared virtualenv may install another worktree's)."""
    import llmrollout

    root = Path(llmrollout.__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "operator"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"llmrollout from {root}"
    return f"llmrollout from {root} at commit {commit}" + (" (with uncommitted changes)" if dirty else "")


def render(out: Path, code: str | None = None) -> int:
    """Rewrite decisions.md from decisions.json, keeping the command and duration it records."""
    rows = json.loads((out / "decisions.json").read_text())
    text = (out / "decisions.md").read_text()
    if code is None:
        recorded = re.search(r"^Decision code: (.*)\.$", text, re.MULTILINE)
        code = recorded.group(1) if recorded else "not recorded"
    made = text.splitlines()[2]
    found = re.match(r"Made by `(.*)` in ([0-9.]+) minutes \((\d+) replicates per cell, seed (\d+)", made)
    if found is None:
        raise SystemExit(f"cannot read the command from {out / 'decisions.md'}: {made!r}")
    command, minutes, replicates, seed = found.groups()
    scrapes = sorted({row["scrape_seconds"] for row in rows}, key=lambda s: (s != SCRAPE_SECONDS, -s))
    settings = {
        "replicates": int(replicates),
        "seed": int(seed),
        "counters": "exact",
        "scrapes": scrapes,
        "decision_code": code,
    }
    write(out, rows, command, settings, 60 * float(minutes))
    print(f"rewrote {out / 'decisions.md'} from decisions.json")
    return 0


def _rate_and_minutes(text: str) -> tuple[float, int]:
    rate, _, minutes = text.partition("=")
    try:
        return float(rate), int(minutes)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not RPS=MINUTES, e.g. 10=120") from None


def _planned_rows(
    rps: float, chosen: Sequence[Scenario], names: Sequence[str], settings: Settings
) -> list[Row]:
    minutes = settings.planned_horizons.get(rps)
    if not minutes:
        return []
    results = _run_planned_horizon(rps, chosen, settings, minutes)
    rows = _rows(rps, chosen, results, settings.replicates, horizon_minutes=minutes)
    return [row for row in rows if row["scenario"] in names]


def _add_planned(
    out: Path,
    rates: Sequence[float],
    chosen: Sequence[Scenario],
    names: Sequence[str],
    settings: Settings,
    command: str,
) -> int:
    """Ours at the planned horizons of `rates`, added to a committed run's rows without running the
    rest again; the rows say which command made them."""
    missing = [rps for rps in rates if not settings.planned_horizons.get(rps)]
    if missing:
        raise SystemExit(
            f"--add: no planned horizon at {missing[0]:g} requests/s (--planned-horizon RPS=MINUTES)"
        )
    rows: list[Row] = json.loads((out / "decisions.json").read_text())
    started = time.perf_counter()
    added = [row for rps in rates for row in _planned_rows(rps, chosen, names, settings)]
    made = f"`{command}` in {(time.perf_counter() - started) / 60:.1f} minutes with {decision_code()}"
    for row in added:
        row["added_by"] = made
    cells = {_cell(row) for row in added}
    (out / "decisions.json").write_text(
        json.dumps([row for row in rows if _cell(row) not in cells] + added, indent=1) + "\n"
    )
    print(f"added {len(added)} rows to {out / 'decisions.json'}")
    return render(out)


def _cell(row: Row) -> tuple[str, str, float, float, int]:
    return (row["policy"], row["scenario"], row["rps"], row["scrape_seconds"], row["horizon_minutes"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decisions", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory for decisions.md and .json")
    parser.add_argument("--decision-code", help="with --render: what the run's decision code was")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite OUT/decisions.md from OUT/decisions.json (after a change to the report)",
    )
    parser.add_argument("--quick", action="store_true", help="a small run for CI (about two minutes)")
    parser.add_argument("--replicates", type=int, help="replicates per cell (default 2000; quick 40)")
    parser.add_argument("--rps", type=float, nargs="+", help="request rates (default 1 10 100)")
    parser.add_argument("--scenario", action="append", help="run only these scenarios (repeatable)")
    parser.add_argument("--counters", choices=("increase", "exact"), default="increase")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--chunk", type=int, default=500, help="replicates simulated at once")
    parser.add_argument(
        "--scrape",
        type=float,
        nargs="*",
        default=list(EXTRA_SCRAPE_SECONDS),
        help=f"other scrape intervals, s, for ours at {TARGET_RPS:g} rps (default 60 1; none: --scrape)",
    )
    default_planned = " ".join(f"{rps:g}={minutes}" for rps, minutes in PLANNED_HORIZON_MINUTES.items())
    parser.add_argument(
        "--planned-horizon",
        nargs="*",
        type=_rate_and_minutes,
        metavar="RPS=MINUTES",
        help=f"ours also with this horizon at this rate (default: the plan's, {default_planned}, quick:"
        f" {TARGET_RPS:g}'s only; none: --planned-horizon)",
    )
    parser.add_argument(
        "--add",
        action="store_true",
        help="run only ours at the planned horizons of --rps, and add those rows to OUT/decisions.json"
        " (replacing the same cells'), then rewrite OUT/decisions.md",
    )
    parser.add_argument("--jobs", type=int, default=1, help="processes for the planned-horizon cells")
    args = parser.parse_args(argv)
    if args.render:
        return render(args.out, args.decision_code)
    replicates = args.replicates or (40 if args.quick else 2000)
    if args.planned_horizon is not None:
        planned_horizons = dict(args.planned_horizon)
    else:
        # Quick: not the 1 request/s one, whose day-long traces take minutes even with 40 replicates.
        defaults = PLANNED_HORIZON_MINUTES.items()
        planned_horizons = {rps: m for rps, m in defaults if rps == TARGET_RPS or not args.quick}
    settings = Settings(
        replicates,
        max(2 * replicates, 200),
        args.counters,
        args.seed,
        args.chunk,
        tuple(args.scrape),
        planned_horizons,
        args.jobs,
    )
    names = args.scenario or [s.name for s in SCENARIOS]
    chosen = [scenario(name) for name in names]
    if IDENTICAL not in names:
        chosen.insert(0, scenario(IDENTICAL))  # calibration needs ours' false rollback rate
    command = "python -m bench.decisions " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    rates = args.rps or [1.0, 10.0, 100.0]
    if args.add:
        return _add_planned(args.out, rates, chosen, names, settings, command)
    started = time.perf_counter()
    rows: list[Row] = []
    for rps in rates:
        clock = time.perf_counter()
        results = _run_rate(rps, chosen, settings)
        rows += [row for row in _rows(rps, chosen, results, replicates) if row["scenario"] in names]
        if rps == TARGET_RPS:
            for scrape, extra in _run_scrapes(rps, chosen, settings).items():
                rows += [
                    row for row in _rows(rps, chosen, extra, replicates, scrape) if row["scenario"] in names
                ]
        rows += _planned_rows(rps, chosen, names, settings)
        print(f"{rps:g} rps done in {time.perf_counter() - clock:.0f} s", flush=True)
    seconds = time.perf_counter() - started
    write(
        args.out,
        rows,
        command,
        {
            "replicates": replicates,
            "seed": args.seed,
            "counters": args.counters,
            "scrapes": [SCRAPE_SECONDS, *settings.scrapes],
            "decision_code": decision_code(),
        },
        seconds,
    )
    print(f"wrote {args.out / 'decisions.md'} and decisions.json in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
