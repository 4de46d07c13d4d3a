"""Benchmarks (run as scripts; each writes bench/results/NAME.md and .json)."""
