"""Benchmarks (run by hand, e.g. `python -m benchmarks.load`; not part of the test suite)."""
