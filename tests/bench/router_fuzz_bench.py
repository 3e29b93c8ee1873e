"""A longer schemathesis run against the router's OpenAPI document than ``make test`` does.

Same setup as tests/runtime/router/test_fuzz.py (the fake worker behind a router, every check of
that test), but more examples per operation and a different seed each time unless
``GROVE_FUZZ_SEED`` is set. Ends with the line ``router_fuzz_cases=<n> failures=<n> seconds=<s>``
(seconds are noisy on a shared machine).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time

from runtime.router.config import load_config
from runtime.router.server import RouterServer
from tests.runtime.fake_vllm import FakeVLLM
from tests.runtime.router.test_fuzz import fuzz

MAX_EXAMPLES = int(os.environ.get("GROVE_FUZZ_EXAMPLES", "1000"))


async def _run() -> tuple[int, str, float]:
    worker = FakeVLLM()
    await worker.start()
    router = RouterServer(load_config(overrides={"port": 0, "worker": [worker.url], "drain_timeout": 2}))
    await router.start()
    seed = int(os.environ.get("GROVE_FUZZ_SEED", random.randrange(2**31)))
    print(f"seed={seed} max_examples={MAX_EXAMPLES}", flush=True)
    started = time.perf_counter()
    try:
        code, out = await fuzz(router, MAX_EXAMPLES, seed=seed, deterministic=False)
    finally:
        await router.stop()
        await worker.stop()
    return code, out, time.perf_counter() - started


def main() -> None:
    """Run the fuzz; raise if schemathesis found a failure (make bench then exits 1)."""
    code, out, seconds = asyncio.run(_run())
    cases = re.search(r"(\d+) generated", out)
    failures = re.search(r"(\d+) found (\d+) unique failure", out)
    n_failures = int(failures.group(2)) if failures else (0 if code == 0 else -1)
    print(out[-3000:] if code else "no failure", flush=True)
    print(f"router_fuzz_cases={cases.group(1) if cases else '?'} failures={n_failures} seconds={seconds:.0f}")
    if code:
        raise RuntimeError("schemathesis found failures (see above)")


if __name__ == "__main__":
    main()
