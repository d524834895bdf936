"""Benchmarks of llmrollout's decisions; see bench/decisions."""
