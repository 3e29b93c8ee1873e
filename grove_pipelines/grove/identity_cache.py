"""Values derived from a CRD (a prepared validator, a compiled normalizer), built once per CRD object.

Keyed by the object's identity and holding a reference to it, so an id is never reused for another
object while its entry lives; bounded, the oldest entry goes first. The derived value is only as fresh
as the object: CRDs are read-only once loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["IdentityCache"]

_V = TypeVar("_V")


class IdentityCache(Generic[_V]):
    """``get(source, key, build)``: ``build()`` the first time for this ``source`` object and ``key``."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._entries: dict[tuple[int, Hashable], tuple[object, _V]] = {}

    def get(self, source: object, key: Hashable, build: Callable[[], _V]) -> _V:
        entry = self._entries.get((id(source), key))
        if entry is not None and entry[0] is source:
            return entry[1]
        value = build()
        if len(self._entries) >= self._size:
            self._entries.pop(next(iter(self._entries)))
        self._entries[(id(source), key)] = (source, value)
        return value

    def values(self) -> list[tuple[object, _V]]:
        """``(source, value)`` of every entry, oldest first."""
        return list(self._entries.values())
