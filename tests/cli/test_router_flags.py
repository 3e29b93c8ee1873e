"""The router command lines the compiler and the local runner write are the ones the router CLI parses.

Each line is parsed by the real ``grove-pipelines router`` command (click, through typer) and turned
into the router's settings; the expected settings are written out by hand from the compiled cliques.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer

from grove_pipelines.cli import router_cmd
from grove_pipelines.cli.main import app
from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.local.plan import LLMPlan
from grove_pipelines.spec import LLMSpec, PipelineSpec
from grove_pipelines.spec.router_flags import ROUTING_POLICIES
from runtime.router.config import load_config
from runtime.router.policies.registry import POLICIES
from tests.grove.conftest import clique, rag_graph


def _router_settings(argv: list[str]) -> dict[str, Any]:
    """``grove-pipelines router ARGS`` parsed by the CLI, as the overrides it hands the router's config."""
    command = typer.main.get_command(app).commands[argv[0]]  # type: ignore[attr-defined]
    params = command.make_context(argv[0], argv[1:]).params
    return router_cmd._overrides(params)


def _router_command(pcs: dict[str, Any], name: str, container: str) -> list[str]:
    return next(c for c in clique(pcs, name)["spec"]["podSpec"]["initContainers"] if c["name"] == container)[
        "command"
    ]


def test_the_compiled_sidecars_parse_into_grove_discovery() -> None:
    pcs = compile_graph(rag_graph()).documents()[0]
    command = _router_command(pcs, "frontend", "router-chat")
    assert command[0] == "grove-pipelines"
    settings = _router_settings(command[1:])
    assert (settings["host"], settings["port"]) == ("0.0.0.0", 9000)
    assert settings["discovery"] == {
        "mode": "grove", "prefill_clique": "chat-prefill", "decode_clique": "chat-dl", "decode_group": "chat-d",
        "worker_port": 8000,
    }  # fmt: skip
    embed = _router_settings(_router_command(pcs, "retrieve", "router-embed")[1:])
    assert embed["discovery"] == {"mode": "grove", "worker_clique": "embed", "worker_port": 8000}
    config = load_config(None, settings)
    assert (config.discovery.prefill_clique, config.discovery.decode_group) == ("chat-prefill", "chat-d")
    # by default every pool routes by prefix: a run's session and a fan-out's siblings meet their cache
    assert config.policy.name == "prefix" and config.prefill_policy is None and config.decode_policy is None
    assert load_config(None, embed).policy.name == "prefix"


@pytest.mark.parametrize("routing", ROUTING_POLICIES)
def test_the_routing_a_stage_declares_is_the_policy_its_sidecars_run(routing: str) -> None:
    assert routing in POLICIES  # every name the SDK accepts is one the router builds
    spec = PipelineSpec(name="one", module="pipelines/one.py")
    graph = PipelineGraph(spec, [LLMSpec(name="chat", model="m", routing=routing)], [(ENTRY, "chat")])
    pcs = compile_graph(graph).documents()[0]
    entry = next(c["name"] for c in pcs["spec"]["template"]["cliques"] if c["name"] != "chat")
    settings = _router_settings(_router_command(pcs, entry, "router-chat")[1:])
    assert load_config(None, settings).policy.name == routing
    plan = LLMPlan(
        stage="chat", served_model_name="m", disaggregated=False, max_model_len=64, routing=routing
    )
    assert (
        load_config(None, _router_settings(["router", *plan.router_args(["http://w:1"])])).policy.name
        == routing
    )


def test_an_unknown_routing_is_refused_when_the_stage_is_declared() -> None:
    with pytest.raises(ValueError, match="routing"):
        LLMSpec(name="chat", model="m", routing="fastest")  # type: ignore[arg-type]


def test_the_local_runners_worker_flags_parse_into_static_pools() -> None:
    pd = LLMPlan(stage="chat", served_model_name="m", disaggregated=True, max_model_len=64, routing="prefix")
    settings = _router_settings(["router", *pd.router_args(["http://127.0.0.1:1", "http://127.0.0.1:2"])])
    assert (settings["prefill"], settings["decode"]) == (["http://127.0.0.1:1"], ["http://127.0.0.1:2"])
    aggregated = LLMPlan(
        stage="chat", served_model_name="m", disaggregated=False, max_model_len=64, routing="prefix"
    )
    assert _router_settings(["router", *aggregated.router_args(["http://127.0.0.1:3"])])["worker"] == [
        "http://127.0.0.1:3"
    ]
