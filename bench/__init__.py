"""Benchmark tooling: a lean load generator and a bare-relay baseline (docs/benchmarks.md)."""
