"""The longer schemathesis run against the pipeline server (``make bench``; the test suite runs a short one).

Prints how many generated requests were sent, by status, and any that got a 5xx, a traceback or a
non-JSON error; exits with an error if there was one. Rate is noisy on a shared machine.
"""

from __future__ import annotations

import os
import time

from tests.runtime.server.fuzz import fuzz_server

EXAMPLES = int(os.environ.get("GROVE_BENCH_FUZZ_EXAMPLES", "300"))


def main() -> None:
    started = time.perf_counter()
    report = fuzz_server(examples=EXAMPLES)
    elapsed = time.perf_counter() - started
    statuses = ", ".join(f"{code}: {count}" for code, count in sorted(report.statuses.items()))
    print(
        f"pipeline server fuzz: {report.cases} requests in {elapsed:.0f} s ({report.cases / elapsed:.0f}/s); {statuses}"
    )
    for failure in report.failures[:20]:
        print(f"  FAIL {failure}")
    if report.failures:
        raise AssertionError(f"{len(report.failures)} generated request(s) broke the rules")
