"""`python -m bench.scale.combine RUN.json... --out DIR`: one report (scale.md, scale.json) from runs
made separately (e.g. the code before a change and after it), each with the commit it measured."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.scale.measure import Point, markdown


def combined(runs: list[dict[str, Any]]) -> str:
    parts = []
    for run in runs:
        points = [Point(**p) for p in run["points"]]
        text = markdown(points, run["facts"]).replace("# bench/scale\n", "", 1).strip()
        parts.append(f"## {run['facts'].get('run', '-')}\n\n{text}\n")
    return "# bench/scale\n\n" + "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale.combine", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="scale.json files, in the order to show")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    runs = [json.loads(path.read_text()) for path in args.runs]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.md").write_text(combined(runs))
    (args.out / "scale.json").write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
