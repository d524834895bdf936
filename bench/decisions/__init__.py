"""The decision benchmark: how fast and how often wrong each rollout policy decides.

`python -m bench.decisions [--quick] --out DIR` simulates request-level traffic for a stable and a
candidate version, aggregates it as Prometheus would, replays the same traces to every policy and
writes DIR/decisions.md and DIR/decisions.json. See model.py for the scenarios and assumptions.
"""
