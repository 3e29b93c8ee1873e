"""How every compiled example stops: each container keeps serving through its ``preStop`` sleep, then
drains what it has in flight, and all of it fits in the pod's grace period (else SIGKILL cuts it).
So does a pipeline whose user gives vLLM drains of their own (``vllm_args``).

The drains are read from what each process really does: vLLM's from the last ``--shutdown-timeout``
of its command line, as its parser takes it (0, vLLM's default, aborts generations at SIGTERM), the
pipeline server's and the router's from their runtime defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from grove_pipelines.compile import compile_ref
from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.spec import PD, LLMSpec, PipelineSpec, PythonStageSpec, Role
from runtime.router.config import RouterConfig
from runtime.server.settings import ServerSettings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "pipelines").glob("*.py"))
SERVER_DRAIN = ServerSettings().drain_s
ROUTER_DRAIN = RouterConfig.model_fields["drain_timeout"].default


def _own_drains() -> PipelineGraph:
    """A pipeline whose user sets vLLM's drain: shorter for the model, longer for its multi-node decode."""
    chat = LLMSpec(
        name="chat",
        model="Qwen/Qwen3-0.6B",
        vllm_args=("--shutdown-timeout", "10"),
        disaggregated=PD(decode=Role(nodes=2, vllm_args=("--shutdown-timeout=300",))),
    )
    stages = [PythonStageSpec(name="slow"), chat]
    return PipelineGraph(PipelineSpec(name="own"), stages, [(ENTRY, "slow"), ("slow", "chat")])


@pytest.fixture(params=[*EXAMPLES, "own-drains"], ids=lambda p: getattr(p, "stem", p))
def pods(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.chdir(ROOT)
    if request.param == "own-drains":
        documents = compile_graph(_own_drains()).documents()
    else:
        documents = compile_ref(f"pipelines/{request.param.name}")
    return [c["spec"]["podSpec"] for c in documents[0]["spec"]["template"]["cliques"]]


def _pre_stop_s(container: dict[str, Any]) -> float:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    return float(command[1])


def _vllm_drain_s(container: dict[str, Any]) -> float:
    line = " ".join(container["command"])  # a multi-node worker's is one ``sh -c`` string
    found = re.findall(r"--shutdown-timeout[=\s']+(\d+)", line)
    assert found, f"vLLM would abort its generations at SIGTERM: {line}"
    return float(found[-1])


def test_every_container_sleeps_then_drains_within_the_grace_period(pods: list[dict[str, Any]]) -> None:
    for pod in pods:
        grace = pod["terminationGracePeriodSeconds"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            name = container["name"]
            if name == "vllm" and "--headless" in " ".join(container["command"]):
                drain = 0.0  # a multi-node worker: SIGTERM comes after its leader's drain (below), nothing is left
            elif name == "vllm":
                drain = _vllm_drain_s(container)
                assert drain > 0
            elif name.startswith("router-"):
                drain = ROUTER_DRAIN
            else:
                assert name == "server", name
                drain = SERVER_DRAIN
            assert _pre_stop_s(container) + drain < grace, (name, grace)


def test_a_multi_node_workers_engine_outlives_its_leaders_drain(pods: list[dict[str, Any]]) -> None:
    leaders = [p for p in pods if any("--node-rank 0" in " ".join(c["command"]) for c in p["containers"])]
    workers = [p for p in pods if any("--headless" in " ".join(c["command"]) for c in p["containers"])]
    assert len(leaders) == len(workers)
    for leader, worker in zip(leaders, workers, strict=True):
        [lead], [work] = leader["containers"], worker["containers"]
        assert _pre_stop_s(work) >= _pre_stop_s(lead) + _vllm_drain_s(lead)
