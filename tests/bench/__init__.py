"""Benchmarks, run by `make bench` (``python -m tests.bench``): they print measurements, assert nothing."""
