"""Garbage collection for a long-running server once it has started: fewer, cheaper collections.

Each proxied request allocates a few hundred short-lived objects, almost none of them in reference
cycles, so the collector's default (a young-generation pass every 700 net allocations, older passes
walking everything the server built at startup) spends CPU on every few requests for nothing.
:func:`settle` moves what startup built out of the collector's sight (``gc.freeze``: it lives as long
as the process) and lets the young generation grow larger before a pass. Measured on the router
against an instant upstream (``gc.callbacks``, the collector's own CPU time): the defaults ran 150-200
collections costing 60-85 ms of CPU in 4.5-8.5 k requests, about 10 µs a request (5-7 % of the
router's CPU); with these settings no collection ran in 9 k requests.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "settle"]

THRESHOLDS = (20_000, 50, 50)
"""``gc.set_threshold`` once started: young passes every 20,000 net allocations, older ones rarer."""


def settle() -> None:
    """Call once the server is listening: freeze what exists, raise the collection thresholds."""
    gc.collect()  # what startup left as garbage goes now, not frozen with the rest
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
