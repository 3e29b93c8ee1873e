"""In-flight counts shared by the router's processes: each writes only its own row, readers sum the rows.

With ``processes > 1`` every process routes on its own, yet a load-aware policy must see the load
all of them put on a worker. The board is one block of shared memory (``multiprocessing.RawArray``,
inherited by the processes), ``processes x SLOTS`` cells of ``(key, requests, tokens)``. A process
adds to and subtracts from its own row only, so no cell has two writers and no lock is needed;
a reader sums one worker's cells over every row (a cell is one aligned 64-bit word, read whole).
A row is an open-addressing table keyed by a 63-bit digest of ``role url``: a slot, once keyed, is
never emptied again (a probe never stops early), and a slot whose counts are back at zero may be
re-keyed by its owner when a row fills up with workers long gone.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
from typing import Any

__all__ = ["LoadBoard"]

log = logging.getLogger("grove.router")

SLOTS = 1024  # distinct workers one process may have had in flight at once
_CELL = 3  # key, requests, tokens


def _key(role: str, url: str) -> int:
    digest = hashlib.blake2b(f"{role} {url}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 1) or 1  # 0 marks an empty slot


class LoadBoard:
    """The board as seen from process ``index`` of ``processes`` (rows of :func:`allocate`'s memory)."""

    def __init__(self, memory: Any, processes: int, index: int) -> None:
        if not 0 <= index < processes:
            raise ValueError("index must be one of the processes")
        self._cells = memoryview(memory).cast("B").cast("q")
        if len(self._cells) != processes * SLOTS * _CELL:
            raise ValueError("the shared memory does not fit this many processes")
        self.processes, self.index = processes, index
        self._keys: dict[tuple[str, str], int] = {}
        self._own: dict[int, int] = {}  # key -> cell offset in this process's row
        self._seen: list[dict[int, int]] = [{} for _ in range(processes)]  # key -> offset last found
        self._full_warned = False

    @staticmethod
    def allocate(processes: int) -> Any:
        """Zeroed shared memory for ``processes`` rows; pass it to every process (spawn inherits it)."""
        return multiprocessing.get_context("spawn").RawArray("q", processes * SLOTS * _CELL)

    def key(self, role: str, url: str) -> int:
        """The worker's key on the board."""
        pair = (role, url)
        key = self._keys.get(pair)
        if key is None:
            key = self._keys[pair] = _key(role, url)
        return key

    def add(self, role: str, url: str, requests: int, tokens: int) -> None:
        """Add to this process's counts of a worker (negative to give them back)."""
        key = self.key(role, url)
        at = self._own.get(key)
        if at is None or self._cells[at] != key:
            at = self._claim(key)
            if at is None:
                return
        cells = self._cells
        cells[at + 1] += requests
        cells[at + 2] += tokens

    def _claim(self, key: int) -> int | None:
        """This row's slot for ``key``: its own, else the first empty one, else one whose counts are zero."""
        cells, base = self._cells, self.index * SLOTS * _CELL
        empty = reusable = None
        for step in range(SLOTS):
            at = base + ((key + step) % SLOTS) * _CELL
            found = cells[at]
            if found == key:
                self._own[key] = at
                return at
            if found == 0:
                empty = at
                break
            if reusable is None and cells[at + 1] == 0 and cells[at + 2] == 0:
                reusable = at
        chosen = empty if empty is not None else reusable
        if chosen is None:
            if not self._full_warned:
                self._full_warned = True
                log.warning("the shared load board is full; some loads are counted by this process only")
            return None
        at = chosen
        if cells[at] != 0:  # re-keyed: the worker it held has nothing in flight from this process
            self._own.pop(cells[at], None)
        cells[at + 1] = cells[at + 2] = 0
        cells[at] = key
        self._own[key] = at
        return at

    def totals(self, role: str, url: str) -> tuple[int, int]:
        """(requests, tokens) in flight on the worker, summed over every process."""
        key = self.key(role, url)
        cells = self._cells
        requests = tokens = 0
        for row in range(self.processes):
            seen = self._seen[row]
            at = seen.get(key)
            if at is None or cells[at] != key:
                at = self._find(row, key)
                if at is None:
                    continue
                seen[key] = at
            requests += cells[at + 1]
            tokens += cells[at + 2]
        return max(0, requests), max(0, tokens)  # never below zero, even if a row was full once

    def _find(self, row: int, key: int) -> int | None:
        cells, base = self._cells, row * SLOTS * _CELL
        for step in range(SLOTS):
            at = base + ((key + step) % SLOTS) * _CELL
            found = cells[at]
            if found == key:
                return at
            if found == 0:
                return None
        return None
