"""Header names as received, remembered as the lower-case text they stand for.

The same few names come with every request and every answer (``content-length``, ``x-request-id``,
...): a dict probe finds them, where decoding and lower-casing each name was two calls per header.
Names come from clients too, so the memory is bounded; past it, names are decoded every time.
"""

from __future__ import annotations

__all__ = ["NAMES", "lower_name"]

NAMES: dict[bytes, str] = {}
"""Raw name -> lower-case text. Read it first: ``NAMES.get(raw) or lower_name(raw)``."""
_KEPT = 512


def lower_name(raw: bytes) -> str:
    """``raw`` decoded (Latin-1) and lower-cased; remembered in :data:`NAMES` while it has room."""
    name = raw.decode("latin-1").lower()
    if len(NAMES) < _KEPT:
        NAMES[raw] = name
    return name
