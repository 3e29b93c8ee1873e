"""Tests of runtime.router."""
