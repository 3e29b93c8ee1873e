"""The SDK records specs, validates options naming stage and field, and runs stages in-process."""

from __future__ import annotations

import asyncio

import pytest

from grove_pipelines import PD, Role, llm, pipeline, stage
from grove_pipelines.errors import DefinitionError
from grove_pipelines.sdk import Stage
from grove_pipelines.sdk.invoke import NoLLMRuntimeError


def test_bare_and_called_forms_record_a_spec() -> None:
    @stage
    async def fetch_docs(q: str) -> str:
        return q

    @stage(replicas=3, min_available=2, resources={"cpu": "500m", "memory": "1Gi", "gpus": 1}, timeout_s=2)
    async def rank(q: str) -> str:
        return q

    assert isinstance(fetch_docs, Stage)
    assert fetch_docs.name == "fetch-docs"
    assert fetch_docs.spec.replicas == 1 and fetch_docs.spec.gang_minimum == 1
    assert rank.spec.replicas == 3 and rank.spec.gang_minimum == 2
    assert rank.spec.resources.gpus == 1 and rank.spec.resources.cpu == "500m"
    assert rank.spec.timeout_s == 2


@pytest.mark.parametrize(
    ("options", "field", "fragment"),
    [
        ({"replicas": 0}, "replicas", "greater than or equal to 1"),
        ({"replicas": 2, "min_available": 3}, "options", "min_available (3) exceeds replicas (2)"),
        ({"resources": {"cpu": "lots"}}, "resources.cpu", "not a Kubernetes quantity"),
        ({"env": {"GROVE_PCS_NAME": "x"}}, "env", "set by the Grove operator"),
        ({"replica": 2}, "replica", "unknown option"),
        ({"name": "Bad_Name"}, "name", "not a DNS label"),
    ],
)
def test_invalid_options_name_stage_and_field(options: dict[str, object], field: str, fragment: str) -> None:
    name = options.pop("name", "worker")
    with pytest.raises(DefinitionError) as info:

        @stage(name=name, **options)  # type: ignore[arg-type]
        async def worker() -> None: ...

    message = str(info.value)
    assert message.startswith(f"stage {name!r}: {field}:"), message
    assert fragment in message
    assert info.value.stage == name


def test_llm_roles_inherit_and_override() -> None:
    model = llm(
        "chat",
        model="m",
        gpus=2,
        vllm_args=("--max-num-seqs", "8"),
        disaggregated=PD(prefill=Role(replicas=3, nodes=2), decode=Role(gpus=1, vllm_args=("--x",))),
    )
    prefill, decode = model.spec.roles()
    assert (prefill.role, prefill.replicas, prefill.nodes, prefill.gpus, prefill.tensor_parallel) == (
        "prefill",
        3,
        2,
        2,
        4,
    )
    assert (decode.role, decode.gpus, decode.tensor_parallel) == ("decode", 1, 1)
    assert decode.vllm_args == ("--max-num-seqs", "8", "--x")
    aggregated = llm("solo", model="m").spec.roles()
    assert [r.role for r in aggregated] == ["serve"]


def test_llm_rejects_tensor_parallel_beyond_gpus() -> None:
    with pytest.raises(DefinitionError, match="llm 'big': .*tensor_parallel \\(16\\) exceeds"):
        llm("big", model="m", gpus=8, tensor_parallel=16)


def test_pipeline_needs_async_body() -> None:
    with pytest.raises(DefinitionError, match="must be an `async def`"):

        @pipeline(name="sync")
        def body() -> None: ...  # type: ignore[arg-type]


def test_pipeline_queue_needs_a_gang_scheduler() -> None:
    with pytest.raises(DefinitionError, match="queue needs scheduler"):

        @pipeline(name="p", queue="team")
        async def body() -> None: ...


def test_stages_run_in_process_without_a_runtime() -> None:
    created: list[int] = []

    @stage
    class Counter:
        def __init__(self) -> None:
            created.append(1)
            self.calls = 0

        async def __call__(self, step: int) -> int:
            self.calls += step
            return self.calls

    @stage
    def double(x: int) -> int:  # plain functions run in a worker thread
        return 2 * x

    @pipeline(name="p")
    async def body(x: int) -> list[int]:
        first = await Counter(x)
        second = await Counter(await double(x))
        return [first, second]

    assert asyncio.run(body(3)) == [3, 9]
    assert created == [1], "a class stage is instantiated once per process"
    assert [p.name for p in Counter.signature().parameters.values()] == ["step"]


def test_llm_call_without_runtime_is_a_clear_error() -> None:
    model = llm("chat", model="m")
    with pytest.raises(NoLLMRuntimeError, match="'chat' was called with no runtime"):
        asyncio.run(model.chat("hi"))


def test_pipeline_calls_records_names_and_rejects_other_values() -> None:
    @stage
    async def lookup(q: str) -> str:
        return q

    @pipeline(name="p", calls=[lookup, "other"])
    async def body() -> None: ...

    assert body.spec.calls == ("lookup", "other")
    assert body.calls == (lookup, "other")
    with pytest.raises(
        DefinitionError, match=r"^pipeline 'q': calls: 3 is neither a stage nor a stage name$"
    ):

        @pipeline(name="q", calls=[3])
        async def other() -> None: ...
