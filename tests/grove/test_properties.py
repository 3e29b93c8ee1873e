"""Property tests: random acyclic graphs of specs compile, validate, and start up in a sound order."""

from __future__ import annotations

import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.grove.kube_model import to_dict
from grove_pipelines.grove.podcliqueset import PodCliqueSet
from grove_pipelines.grove.validate import check_documents
from grove_pipelines.spec import PD, Autoscaling, LLMSpec, PipelineSpec, PythonStageSpec, Role

_roles = st.builds(
    Role,
    replicas=st.integers(1, 3),
    nodes=st.one_of(st.none(), st.integers(1, 3)),
    gpus=st.one_of(st.none(), st.integers(0, 2)),
)


@st.composite
def _stage(draw: st.DrawFn, name: str) -> PythonStageSpec | LLMSpec:
    replicas = draw(st.integers(1, 3))
    scale = draw(st.one_of(st.none(), st.builds(Autoscaling, max_replicas=st.integers(3, 6))))
    if draw(st.booleans()):
        return PythonStageSpec(name=name, replicas=replicas, autoscaling=scale)
    disagg = draw(st.one_of(st.none(), st.builds(PD, prefill=_roles, decode=_roles)))
    return LLMSpec(
        name=name, model="m", gpus=draw(st.integers(0, 2)), nodes=draw(st.integers(1, 3)),
        replicas=replicas, autoscaling=scale, disaggregated=disagg,
    )  # fmt: skip


@st.composite
def graphs(draw: st.DrawFn) -> PipelineGraph:
    count = draw(st.integers(0, 7))
    names = [f"st{i}" for i in range(count)]  # never a suffix of one another, nor of derived clique names
    stages = [draw(_stage(name)) for name in names]
    edges = [(ENTRY, n) for n in names if draw(st.booleans())]
    for i, caller in enumerate(names):  # only "earlier calls later": acyclic by construction
        edges += [(caller, callee) for callee in names[i + 1 :] if draw(st.integers(0, 3)) == 0]
    scheduler = draw(st.sampled_from([None, "kai-scheduler"]))
    spec = PipelineSpec(name=draw(st.sampled_from(["p", "a-rather-long-pipeline-name-for-budgets"])),
                        scheduler=scheduler, queue="q" if scheduler else None)  # fmt: skip
    return PipelineGraph(spec, stages, edges)


_settings = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(graphs())
def test_random_graphs_compile_and_validate(graph: PipelineGraph) -> None:
    docs = compile_graph(graph).documents()
    reports = check_documents(docs, strict=True, defaults=False)
    assert all(r.ok for r in reports), [str(p) for r in reports for p in r.problems]
    assert to_dict(PodCliqueSet.model_validate(docs[0])) == docs[0]


@_settings
@given(graphs())
def test_starts_after_is_acyclic_and_implied_by_the_graph(graph: PipelineGraph) -> None:
    pcs = compile_graph(graph).documents()[0]
    stage_of = {
        c["name"]: c["labels"]["grove-pipelines.io/stage"] for c in pcs["spec"]["template"]["cliques"]
    }
    leader_of = {
        g["cliqueNames"][1]: g["cliqueNames"][0]
        for g in pcs["spec"]["template"].get("podCliqueScalingGroups", [])
    }
    calls: nx.DiGraph[str] = nx.DiGraph(graph.edges())
    calls.add_node(ENTRY)
    order: nx.DiGraph[str] = nx.DiGraph()
    for clique in pcs["spec"]["template"]["cliques"]:
        for dep in clique["spec"].get("startsAfter", []):
            order.add_edge(clique["name"], dep)
            caller, callee = stage_of[clique["name"]], stage_of[dep]
            if caller == callee:
                assert leader_of.get(clique["name"]) == dep  # only workers wait inside a stage
            else:
                assert nx.has_path(calls, caller, callee), (clique["name"], dep)
    assert nx.is_directed_acyclic_graph(order)
    for caller, callee in graph.startup_edges():  # and every needed edge is there
        waiting = [c for c, s in stage_of.items() if s == caller and c not in leader_of]
        targets = [c for c, s in stage_of.items() if s == callee and c not in leader_of]
        for clique in waiting:
            assert set(targets) <= set(order.successors(clique))
    explicit = pcs["spec"]["template"]["cliqueStartupType"] == "CliqueStartupTypeExplicit"
    assert explicit == (order.number_of_edges() > 0)
