"""Name budgets and the stable shortening of long PodCliqueSet names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grove_pipelines.errors import CompileError
from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.grove.names import CliqueSlot, clique_fqn, fnv_suffix, pcs_name
from grove_pipelines.grove.validate import check_documents
from grove_pipelines.spec import PD, LLMSpec, PipelineSpec, Role


def test_fnv_suffix_is_fnv1a_32() -> None:
    # FNV-1a 32 of "" is the offset basis 0x811c9dc5; of "a" it is 0xe40c292c
    assert fnv_suffix("") == "811c"
    assert fnv_suffix("a") == "e40c"


def test_fqn_patterns() -> None:
    assert clique_fqn("rag", "chat") == "rag-0-chat"
    assert clique_fqn("rag", "chat-dl", group="chat-d", group_index=3) == "rag-0-chat-d-3-chat-dl"


def test_short_names_are_kept() -> None:
    assert pcs_name("rag", [CliqueSlot("frontend")]) == "rag"


def test_long_names_get_a_stable_hash_suffix() -> None:
    long = "a-very-long-pipeline-name-for-the-production-cluster"
    slots = [CliqueSlot("frontend"), CliqueSlot("chat-pw", "chat-p", max_pods=3, max_group_replicas=2)]
    short = pcs_name(long, slots)
    assert short == pcs_name(long, slots)  # stable
    assert short.endswith("-" + fnv_suffix(long)) and short.startswith("a-very-long")
    assert len(short) + len("chat-p") + len("chat-pw") <= 45
    assert pcs_name(long + "x", slots) != short


@given(st.from_regex(r"[a-z][a-z0-9]{0,20}(-[a-z0-9]{1,10}){0,4}", fullmatch=True))
def test_shortened_names_always_fit_and_are_deterministic(name: str) -> None:
    slots = [
        CliqueSlot("frontend", max_pods=1000),
        CliqueSlot("model-dw", "model-d", max_pods=7, max_group_replicas=12),
    ]
    first = pcs_name(name, slots)
    assert first == pcs_name(name, slots)
    assert len(first) + len("model-d") + len("model-dw") <= 45
    assert len(clique_fqn(first, "model-dw", group="model-d", group_index=11)) <= 57
    assert first[0].isalpha() and not first.endswith("-")


def test_long_pipeline_compiles_and_validates_under_a_short_name() -> None:
    name = "customer-support-agentic-retrieval-pipeline-v2"
    llm = LLMSpec(
        name="assistant", model="m", gpus=1, disaggregated=PD(prefill=Role(nodes=2), decode=Role(nodes=2))
    )
    docs = compile_graph(PipelineGraph(PipelineSpec(name=name), [llm], [(ENTRY, "assistant")])).documents()
    assert (
        docs[0]["metadata"]["name"] == f"customer-support-{fnv_suffix(name)}"
    )  # 45 - len("assistant-p" + "assistant-pw") = 22
    assert docs[0]["metadata"]["labels"]["app.kubernetes.io/name"] == name
    assert all(report.ok for report in check_documents(docs, strict=True, defaults=False))


def test_impossible_budget_names_the_stage() -> None:
    llm = LLMSpec(name="an-extremely-long-model-stage-name", model="m", nodes=2, gpus=1)
    with pytest.raises(CompileError, match="stage 'an-extremely-long-model-stage-name'"):
        compile_graph(PipelineGraph(PipelineSpec(name="p"), [llm], [(ENTRY, llm.name)]))
