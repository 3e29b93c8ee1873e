"""Python's cyclic garbage collector paused while a large manifest is built, dumped or checked.

Compiling and validating a 1,000-stage pipeline allocates hundreds of thousands of models, dicts and
lists that stay alive until the call returns. Every 700 allocations the collector starts, and its older
generations re-traverse that growing tree — and the CRD schemas loaded before it — again and again:
a third to a half of compile + validate time, for garbage that is almost never a cycle. Paused, the same
work finds the same result; cycles made meanwhile are collected as usual once the collector resumes.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["gc_paused"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def gc_paused(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """``function`` with the collector paused for its duration (nesting and an already paused collector
    are respected: only the call that paused it resumes it)."""

    @functools.wraps(function)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return paused
