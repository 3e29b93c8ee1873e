"""The vLLM plugin that stops NIXL's progress thread from spinning (runtime/engines/nixl_progress.py).

A real NIXL agent with the UCX backend, made as vLLM's NixlConnector makes it, idles for a second in
a child process, with and without the plugin. The child reports, per thread, from the kernel's own
accounting: how much of that second the thread was runnable (on a core or queued for one) and how
often it went to sleep of its own accord. A spinning thread is runnable all the time and never sleeps,
whatever else loads the machine; a waiting one sleeps hundreds of times a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

pytestmark = pytest.mark.timeout(120)

CHILD = """
import json, os, sys, time
if sys.argv[1] == "plugin":
    from runtime.engines.nixl_progress import register
    register()
    register()  # vLLM may load a plugin more than once per process
from nixl._api import nixl_agent, nixl_agent_config
agent = nixl_agent("probe", nixl_agent_config(num_threads=4, capture_telemetry=True))
time.sleep(0.5)

def sample():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        if int(tid) == os.getpid():
            continue
        try:
            run, wait, _ = open(f"/proc/self/task/{tid}/schedstat").read().split()
            status = open(f"/proc/self/task/{tid}/status").read()
        except OSError:
            continue
        sleeps = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
        out[tid] = (int(run) + int(wait), sleeps)
    return out

before, start = sample(), time.monotonic()
time.sleep(1.0)
after, wall = sample(), time.monotonic() - start
threads = [
    {"runnable": (after[t][0] - before[t][0]) / 1e9 / wall, "sleeps": after[t][1] - before[t][1]}
    for t in after if t in before
]
print(json.dumps(threads))
"""


def _spinning_threads(mode: str) -> list[dict[str, float]]:
    """Threads of an idle NIXL agent that were runnable most of a second and never slept."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    threads = json.loads(out.strip().splitlines()[-1])
    return [t for t in threads if t["runnable"] > 0.5 and t["sleeps"] < 5]


def test_vllm_finds_the_plugin_among_its_general_plugins() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="vllm.general_plugins")}
    assert found.get("grove_nixl_progress") == "runtime.engines.nixl_progress:register"


def test_an_idle_nixl_agent_spins_without_the_plugin_and_sleeps_with_it() -> None:
    assert len(_spinning_threads("plain")) == 1  # NIXL's progress thread, as vLLM gets it
    assert _spinning_threads("plugin") == []


RCACHE_CHILD = """
import os
from runtime.engines.nixl_progress import register
register()
import nixl._api
print(os.environ.get("UCX_RCACHE_MAX_UNRELEASED"))
"""


@pytest.mark.parametrize(("given", "seen"), [(None, "1024"), ("64", "64")])
def test_the_plugin_keeps_the_ucx_cache_limit_vllm_would_set_before_loading_nixl(
    given: str | None, seen: str
) -> None:
    # vLLM sets UCX_RCACHE_MAX_UNRELEASED=1024 before its first import of NIXL, and only if NIXL is not
    # loaded yet; the plugin loads NIXL earlier, so it must leave the same setting (and keep the user's).
    env = {k: v for k, v in os.environ.items() if k != "UCX_RCACHE_MAX_UNRELEASED"}
    if given is not None:
        env["UCX_RCACHE_MAX_UNRELEASED"] = given
    out = subprocess.run(
        [sys.executable, "-c", RCACHE_CHILD], capture_output=True, text=True, timeout=60, check=True, env=env
    ).stdout
    assert out.strip().splitlines()[-1] == seen


def test_a_bad_delay_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.engines.nixl_progress import DELAY_ENV, progress_delay_us

    monkeypatch.setenv(DELAY_ENV, "soon")
    with pytest.raises(ValueError, match=DELAY_ENV):
        progress_delay_us()
    monkeypatch.setenv(DELAY_ENV, "0")
    assert progress_delay_us() == 0
