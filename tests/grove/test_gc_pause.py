"""``gc_paused``: the collector is off inside the call and back as it was after, even on an exception."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from grove_pipelines.grove.gc_pause import gc_paused


@gc_paused
def _state(fail: bool = False) -> bool:
    if fail:
        raise ValueError("boom")
    return gc.isenabled()


@gc_paused
def _nested() -> tuple[bool, bool]:
    return _state(), gc.isenabled()


@pytest.fixture
def collector() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_paused_inside_and_resumed_after(collector: None) -> None:
    gc.enable()
    assert _state() is False
    assert gc.isenabled()
    assert _nested() == (False, False)
    assert gc.isenabled()


def test_resumed_after_an_exception(collector: None) -> None:
    gc.enable()
    with pytest.raises(ValueError, match="boom"):
        _state(fail=True)
    assert gc.isenabled()


def test_a_collector_paused_by_the_caller_stays_paused(collector: None) -> None:
    gc.disable()
    assert _state() is False
    assert not gc.isenabled()
