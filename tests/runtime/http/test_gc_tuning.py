"""A started server's garbage collection: startup's objects frozen, young passes rarer, cycles still freed."""

from __future__ import annotations

import gc
import weakref

import pytest

from runtime.http import gc_tuning

pytestmark = pytest.mark.timeout(30)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_settle_freezes_startup_raises_thresholds_and_still_collects_cycles() -> None:
    before = gc.get_threshold()
    try:
        built_at_startup = [object() for _ in range(1000)]
        gc_tuning.settle()
        assert gc.get_threshold() == gc_tuning.THRESHOLDS
        assert gc.get_freeze_count() >= len(built_at_startup)
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a cycle made after startup is not frozen: a collection frees it
        alive = weakref.ref(a)
        del a, b
        gc.collect()
        assert alive() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
