"""Name budgets and the stable shortening of long PodCliqueSet names."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from grove_pipelines.errors import CompileError
from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.grove.names import CliqueSlot, clique_fqn, fnv_suffix, pcs_name
from grove_pipelines.grove.validate import check_documents
from grove_pipelines.spec import PD, LLMSpec, PipelineSpec, PythonStageSpec, Role


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


def _names_used_by_routers_and_services(docs: list[dict]) -> tuple[set[str], set[str]]:  # type: ignore[type-arg]
    """Clique and group names the router sidecars are told to discover, and the stage Service hosts."""
    cliques: set[str] = set()
    hosts: set[str] = set()
    for clique in docs[0]["spec"]["template"]["cliques"]:
        for container in clique["spec"]["podSpec"]["containers"]:
            command = container.get("command") or []
            for flag, value in itertools.pairwise(command):
                if flag.endswith(("-clique", "-group")) and flag.startswith("--"):
                    cliques.add(value)
            for env in container.get("env") or []:
                if env["name"].startswith("GP_STAGE_URL_"):
                    hosts.add(env["value"].split("//", 1)[1].split(":", 1)[0])
    return cliques, hosts


def _check_consistent(docs: list[dict]) -> None:  # type: ignore[type-arg]
    template = docs[0]["spec"]["template"]
    cliques = {c["name"] for c in template["cliques"]}
    groups = {g["name"] for g in template.get("podCliqueScalingGroups") or []}
    discovered, hosts = _names_used_by_routers_and_services(docs)
    assert discovered <= cliques | groups
    assert hosts <= {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    for clique in template["cliques"]:
        assert set(clique["spec"].get("startsAfter") or []) <= cliques
        assert all(len(c["name"]) <= 63 for c in clique["spec"]["podSpec"]["containers"])
    assert all(report.ok for report in check_documents(docs, strict=True, defaults=False)), [
        str(p) for r in check_documents(docs, strict=True, defaults=False) for p in r.problems
    ]


def test_the_issue_long_names_are_shortened_not_refused() -> None:
    name, model = "customer-support-agentic-pipeline-prod", "a-rather-long-language-model-stage-name"
    llm = LLMSpec(
        name=model, model="m", gpus=1, disaggregated=PD(prefill=Role(nodes=2), decode=Role(nodes=2))
    )
    compiled = compile_graph(PipelineGraph(PipelineSpec(name=name), [llm], [(ENTRY, model)]))
    docs = compiled.documents()
    base = f"a-rathe-{fnv_suffix(model)}"  # 16 (pcs floor) + 2 * 12 + len("-p") + len("-pl") = 45
    pcs = docs[0]["metadata"]["name"]
    assert pcs == f"customer-su-{fnv_suffix(name)}"
    cliques = docs[0]["spec"]["template"]["cliques"]
    assert [c["name"] for c in cliques] == [
        "frontend",
        f"{base}-pl",
        f"{base}-pw",
        f"{base}-dl",
        f"{base}-dw",
    ]
    assert [c["spec"]["roleName"] for c in cliques[1:]] == [f"{model}-{s}" for s in ("pl", "pw", "dl", "dw")]
    assert {c["labels"]["grove-pipelines.io/stage"] for c in cliques[1:]} == {model}
    assert compiled.notes == [
        f"pipeline {name!r} is too long for Grove's name budget: its PodCliqueSet is named {pcs!r}",
        (
            f"stage {model!r} is too long for Grove's name budget: its cliques are named {base}-pl, {base}-pw, "
            f"{base}-dl, {base}-dw (roleName and the label grove-pipelines.io/stage keep the full names)"
        ),
    ]
    _check_consistent(docs)


_LABEL = st.from_regex(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)


@st.composite
def _long_graphs(draw: st.DrawFn) -> PipelineGraph:
    pipeline = draw(_LABEL)
    count = draw(st.integers(1, 3))
    stages = []
    for index in range(count):
        stem = draw(_LABEL)
        name = f"s{index}{stem}"[:63].rstrip("-")
        kind = draw(st.sampled_from(["python", "llm", "pd", "multi"]))
        if kind == "python":
            stages.append(PythonStageSpec(name=name, replicas=draw(st.integers(1, 12))))
        else:
            nodes = 2 if kind == "multi" else 1
            pd = PD(prefill=Role(nodes=nodes), decode=Role(nodes=nodes)) if kind != "llm" else None
            stages.append(LLMSpec(name=name, model="m", gpus=1, disaggregated=pd, nodes=1))
    return PipelineGraph(PipelineSpec(name=pipeline), stages, [(ENTRY, s.name) for s in stages])


@settings(max_examples=80, deadline=None)
@given(_long_graphs())
def test_any_name_lengths_compile_to_valid_consistent_manifests(graph: PipelineGraph) -> None:
    try:
        compiled = compile_graph(graph)
    except CompileError as exc:  # only a genuine clash of two stages' clique names may refuse
        assert "clash" in str(exc) or "share the clique name" in str(exc), exc
        return
    docs = compiled.documents()
    assert docs == compile_graph(graph).documents()  # deterministic
    _check_consistent(docs)
    cliques = docs[0]["spec"]["template"]["cliques"]
    shortened = {
        c["labels"]["grove-pipelines.io/stage"] for c in cliques if c["name"] != c["spec"]["roleName"]
    }
    stage_notes = [n for n in compiled.notes if n.startswith("stage ")]
    assert len(stage_notes) == len(shortened)
