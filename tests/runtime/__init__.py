"""Tests of the runtime package (router, engines)."""
