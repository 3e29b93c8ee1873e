"""``@pipeline(otel={...})``: every container that exports spans gets the tracing variables, vLLM its flag.

The expected values are written out here (the endpoint vLLM gets is the specification's resolution,
``<endpoint>/v1/traces`` over HTTP, the endpoint itself over gRPC), not computed by the code under test.
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest
import yaml

from grove_pipelines.errors import DefinitionError
from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.grove.validate import validate_documents
from grove_pipelines.sdk import pipeline
from grove_pipelines.spec import LLMSpec, PipelineSpec, PythonStageSpec
from grove_pipelines.spec.vllm import VLLMServe
from tests.grove.conftest import rag_graph

pytestmark = pytest.mark.timeout(60)

COLLECTOR = "http://otel-collector.observability:4318"
OTEL = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR,
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "0.25",
}
VLLM_SERVICE = {
    "chat-prefill": "vllm-prefill",
    "chat-dl": "vllm-decode",
    "chat-dw": "vllm-decode",
    "embed": "vllm",
}


def _containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for c in docs[0]["spec"]["template"]["cliques"]:
        pod = c["spec"]["podSpec"]
        out += [(c["name"], container) for container in [*pod.get("initContainers", []), *pod["containers"]]]
    return out


def _env(container: dict[str, Any]) -> dict[str, str]:
    names = [e["name"] for e in container.get("env") or ()]
    assert len(names) == len(set(names)), names  # server-side apply refuses a name twice
    return {e["name"]: e.get("value") for e in container.get("env") or ()}


def _argv(container: dict[str, Any]) -> list[str]:
    command = container["command"]
    return shlex.split(command[2]) if command[:2] == ["sh", "-c"] else command


def test_every_container_gets_the_variables_and_vllm_exports_to_the_same_collector() -> None:
    docs = compile_graph(rag_graph(otel=OTEL)).documents()
    validate_documents(docs, strict=True, defaults=False)
    seen = set()
    for clique, container in _containers(docs):
        env, argv = _env(container), _argv(container)
        assert {k: env.get(k) for k in OTEL} == OTEL, (clique, container["name"])
        seen.add(container["name"].split("-")[0])
        if container["name"] == "vllm":
            flag = argv.index("--otlp-traces-endpoint")
            assert argv[flag + 1] == COLLECTOR + "/v1/traces"
            assert env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf"  # vLLM would assume grpc
            assert env["OTEL_SERVICE_NAME"] == VLLM_SERVICE[clique]
        else:  # the pipeline server, stage servers and routers read the variables themselves
            assert "--otlp-traces-endpoint" not in argv
            assert "OTEL_SERVICE_NAME" not in env
    assert seen == {"server", "router", "vllm"}


def test_nothing_set_means_no_tracing_in_the_manifests() -> None:
    text = yaml.safe_dump(compile_graph(rag_graph()).documents())
    assert "OTEL_" not in text and "otlp" not in text


def test_grpc_gets_the_endpoint_itself() -> None:
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    for _, container in _containers(compile_graph(rag_graph(otel=otel)).documents()):
        if container["name"] == "vllm":
            argv = _argv(container)
            assert argv[argv.index("--otlp-traces-endpoint") + 1] == "http://collector:4317"
            assert _env(container)["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "grpc"


@pytest.mark.parametrize("off", [{"OTEL_TRACES_EXPORTER": "none"}, {"OTEL_SDK_DISABLED": "true"}])
def test_exporting_turned_off_passes_the_variables_but_no_vllm_flag(off: dict[str, str]) -> None:
    otel = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces", **off}
    for _, container in _containers(compile_graph(rag_graph(otel=otel)).documents()):
        assert {k: _env(container).get(k) for k in otel} == otel
        assert "--otlp-traces-endpoint" not in _argv(container)


def test_a_stages_own_env_keeps_its_value() -> None:
    spec = PipelineSpec(name="p", module="p.py", otel=OTEL)
    stages = [
        PythonStageSpec(name="tool", env={"OTEL_TRACES_SAMPLER": "always_on"}),
        LLMSpec(name="m", model="x", gpus=0, env={"OTEL_TRACES_SAMPLER_ARG": "1.0"}),
    ]
    docs = compile_graph(PipelineGraph(spec, stages, [(ENTRY, "tool"), ("tool", "m")])).documents()
    envs = {(clique, c["name"]): _env(c) for clique, c in _containers(docs)}
    assert envs[("tool", "server")]["OTEL_TRACES_SAMPLER"] == "always_on"
    assert envs[("m", "vllm")]["OTEL_TRACES_SAMPLER_ARG"] == "1.0"
    assert envs[("tool", "router-m")]["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"


def test_only_tracing_variables_are_accepted() -> None:
    with pytest.raises(DefinitionError, match="otel: .*'PATH' is not a tracing variable"):

        @pipeline(name="p", otel={"PATH": "/bin"})
        async def p() -> None: ...


def test_the_local_run_keeps_vllms_flag() -> None:
    """``run`` rewrites the compiled vLLM command for this machine through ``VLLMServe.parse``."""
    args = ["serve", "m", "--served-model-name", "m", "--host", "0.0.0.0", "--port", "8000",
            "--otlp-traces-endpoint", COLLECTOR + "/v1/traces"]  # fmt: skip
    serve = VLLMServe.parse(args)
    assert serve.otlp_traces_endpoint == COLLECTOR + "/v1/traces" and serve.extra_args == ()
    assert serve.model_copy(update={"seed": 0}).args()[-4:] == [
        "--seed",
        "0",
        "--otlp-traces-endpoint",
        COLLECTOR + "/v1/traces",
    ]
