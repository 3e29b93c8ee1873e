"""Tests of runtime.engines."""
