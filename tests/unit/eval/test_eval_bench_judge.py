"""`python -m bench.judge` on a short run: the queue stays bounded and every exchange is accounted for.

No timing assertions: how many exchanges arrive depends on the machine; what must hold does not.
"""

from __future__ import annotations

import json

import pytest

from bench.judge.__main__ import main


def test_quick_overload_run(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["--seconds", "1.5", "--queue-size", "50", "--judge-delay", "0.02", "--clients", "2", "--json"]
    )
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0, out
    assert result["max_queue_depth"] <= result["queue_capacity"] == 50
    assert result["dropped"] > 0, "the run must overload the judge to test anything"
    assert result["sent"] == result["sampled"] + result["dropped"]
    assert result["sampled"] == result["scored"] + result["unscored"] + result["left_in_queue"]
    # Flat memory: dropped exchanges are not kept. Generous, since pytest's own heap moves too.
    assert max(result["rss_ratios"]) < 1.5
    assert "queue bounded: max depth" in out
