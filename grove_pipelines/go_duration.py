"""Go's duration syntax (``time.ParseDuration``): what Grove's ``terminationDelay`` and kubectl's
``--timeout`` accept, read in one place for the webhook rules and the CLI."""

from __future__ import annotations

import re

__all__ = ["parse_go_duration"]

_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float | None:
    """A Go duration (``"1h30m"``, ``"4h"``, ``"1.5s"``, ``"0"``) in seconds; ``None`` if it is not one."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) and pos > 0 else None
