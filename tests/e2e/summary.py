"""Lines for the session summary: facts about the e2e session (its cluster, the operator's log) and what
tests measured. tests/conftest.py prints them; from a pytest-xdist worker they travel to the controller."""

from __future__ import annotations

facts: dict[str, str] = {}
measured: list[str] = []
