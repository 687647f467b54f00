"""Benchmarks: `cloudchain bench ...` measures; docs/BENCHMARKS.md records."""
