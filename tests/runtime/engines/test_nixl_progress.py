"""The vLLM plugin that stops NIXL's progress thread from spinning (runtime/engines/nixl_progress.py).

A real NIXL agent with the UCX backend, as vLLM's NixlConnector makes it, is created in a child
process with and without the plugin; the child reports the CPU time its process used over one
second of doing nothing. Without the plugin the progress thread spins; with it, it sleeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

pytestmark = pytest.mark.timeout(120)

CHILD = """
import json, sys, time
if sys.argv[1] == "plugin":
    from runtime.engines.nixl_progress import register
    register()
    register()  # vLLM may load a plugin more than once per process
from nixl._api import nixl_agent, nixl_agent_config
agent = nixl_agent("probe", nixl_agent_config(num_threads=4, capture_telemetry=True))
time.sleep(0.5)
cpu, wall = time.process_time(), time.monotonic()
time.sleep(1.0)
print(json.dumps({"cpu_per_s": (time.process_time() - cpu) / (time.monotonic() - wall)}))
"""


def _idle_cpu(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["cpu_per_s"])


def test_vllm_finds_the_plugin_among_its_general_plugins() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="vllm.general_plugins")}
    assert found.get("grove_nixl_progress") == "runtime.engines.nixl_progress:register"


def test_an_idle_nixl_agent_spins_without_the_plugin_and_sleeps_with_it() -> None:
    spinning, waiting = _idle_cpu("plain"), _idle_cpu("plugin")
    assert spinning > 0.3, f"NIXL's progress thread did not spin ({spinning:.2f} s of CPU per second)"
    assert waiting < spinning / 5, f"with the plugin: {waiting:.2f} s/s against {spinning:.2f} s/s"


def test_a_bad_delay_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.engines.nixl_progress import DELAY_ENV, progress_delay_us

    monkeypatch.setenv(DELAY_ENV, "soon")
    with pytest.raises(ValueError, match=DELAY_ENV):
        progress_delay_us()
    monkeypatch.setenv(DELAY_ENV, "0")
    assert progress_delay_us() == 0
