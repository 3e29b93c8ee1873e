"""`make bench`: run the ``main()`` of every ``tests/bench/*_bench.py`` module in turn.

``python -m tests.bench router`` runs only the modules whose name contains ``router``. A module's
``main()`` may return its acceptance line (``key=value ...``); they are printed together at the end,
so the router's and the pipeline server's overheads sit side by side.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run the selected benchmark modules; exit 1 if any of them raised."""
    names = sorted(p.stem for p in Path(__file__).parent.glob("*_bench.py"))
    chosen = [n for n in names if not argv or any(word in n for word in argv)]
    failed = []
    summaries = []
    for name in chosen:
        print(f"=== {name}", flush=True)
        try:
            line = importlib.import_module(f"tests.bench.{name}").main()
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            traceback.print_exc()
            failed.append(name)
            continue
        if isinstance(line, str):
            summaries.append(line)
    if summaries:
        print("=== summary", *summaries, sep="\n", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
