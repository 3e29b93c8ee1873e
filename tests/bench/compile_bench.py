"""Compile and validate a generated 1,000-stage pipeline; prints the time of each step (aim: < 1 s total).

Two shapes: a layered DAG built from specs, and user code whose body reaches a registry of 1,000 tool
stages only through three levels of helpers (timed from the imported module: scan, graph, compile,
validate).
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.grove.validate import check_documents, load_crds
from grove_pipelines.loader import load_pipeline
from grove_pipelines.spec import PD, LLMSpec, PipelineSpec, PythonStageSpec, Role

STAGES = 1000


def build(stages: int = STAGES, seed: int = 7) -> PipelineGraph:
    """A layered DAG: 80 % Python stages, the rest LLMs (aggregated, disaggregated, multi-node)."""
    rng = random.Random(seed)
    specs: list[PythonStageSpec | LLMSpec] = []
    for i in range(stages):
        name = f"s{i:04d}"
        kind = rng.random()
        if kind < 0.8:
            specs.append(PythonStageSpec(name=name, replicas=rng.randint(1, 3)))
        elif kind < 0.9:
            specs.append(LLMSpec(name=name, model="Qwen/Qwen3-0.6B", gpus=1))
        elif kind < 0.97:
            specs.append(
                LLMSpec(
                    name=name, model="m", gpus=1, disaggregated=PD(prefill=Role(replicas=2), decode=Role())
                )
            )
        else:
            specs.append(
                LLMSpec(
                    name=name,
                    model="m",
                    gpus=8,
                    disaggregated=PD(prefill=Role(nodes=2), decode=Role(nodes=2)),
                )
            )
    edges = [(ENTRY, specs[i].name) for i in range(0, stages, 50)]
    for i, spec in enumerate(specs):
        if isinstance(spec, PythonStageSpec):
            for j in rng.sample(
                range(i + 1, min(stages, i + 30)), k=min(2, max(0, min(stages, i + 30) - i - 1))
            ):
                edges.append((spec.name, specs[j].name))
    return PipelineGraph(PipelineSpec(name="bench", module="bench.py"), specs, edges)


def registry_source(tools: int = STAGES) -> str:
    """A pipeline module: ``tools`` stages in a dict registry, reached from the body through 3 helpers."""
    lines = ["from grove_pipelines import pipeline, stage", ""]
    for i in range(tools):
        lines += [
            f"@stage(name='tool-{i:04d}')",
            f"async def tool_{i:04d}(x: str) -> str:",
            "    return x",
            "",
        ]
    lines.append("TOOLS = {" + ", ".join(f"'t{i}': tool_{i:04d}" for i in range(tools)) + "}")
    lines += [
        "",
        "async def pick(name: str, x: str) -> str:",
        "    return await TOOLS[name](x)",
        "",
        "async def plan(name: str, x: str) -> str:",
        "    return await pick(name, x)",
        "",
        "async def act(name: str, x: str) -> str:",
        "    return await plan(name, x)",
        "",
        "@pipeline(name='registry-bench')",
        "async def agent(name: str, x: str) -> str:",
        "    return await act(name, x)",
    ]
    return "\n".join(lines) + "\n"


def registry_bench(crds: object) -> None:
    """1,000 tool stages in a registry reached through helpers: scan + graph, compile, validate."""
    with tempfile.TemporaryDirectory(prefix="registry-bench") as folder:
        path = Path(folder) / "registry_bench_pipeline.py"
        path.write_text(registry_source())
        t0 = time.perf_counter()
        loaded = load_pipeline(str(path))
        t1 = time.perf_counter()
        graph = loaded.graph()
        t2 = time.perf_counter()
        docs = compile_graph(graph, ref="registry_bench_pipeline.py:registry-bench").documents()
        t3 = time.perf_counter()
        reports = check_documents(docs, crds=crds, strict=True, defaults=False)  # type: ignore[arg-type]
        t4 = time.perf_counter()
    assert len(graph.callees(ENTRY)) == STAGES, len(graph.callees(ENTRY))
    assert all(r.ok for r in reports), [str(p) for r in reports for p in r.problems][:5]
    print(
        f"compile_bench (registry): {STAGES} tool stages through 3 helpers -> "
        f"{len(docs[0]['spec']['template']['cliques'])} cliques: import {t1 - t0:.3f}s, scan+graph {t2 - t1:.3f}s, "
        f"compile {t3 - t2:.3f}s, validate {t4 - t3:.3f}s, scan+graph+compile+validate {t4 - t1:.3f}s"
    )


def main() -> None:
    """Run the benchmark once (after a warm-up of the CRD load and schema preparation)."""
    crds = load_crds()
    check_documents(
        compile_graph(build(10)).documents(), crds=crds, strict=True, defaults=False
    )  # warm caches
    t0 = time.perf_counter()
    graph = build()
    t1 = time.perf_counter()
    docs = compile_graph(graph).documents()
    t2 = time.perf_counter()
    reports = check_documents(docs, crds=crds, strict=True, defaults=False)
    t3 = time.perf_counter()
    cliques = len(docs[0]["spec"]["template"]["cliques"])
    assert all(r.ok for r in reports), [str(p) for r in reports for p in r.problems][:5]
    print(
        f"compile_bench: {STAGES} stages -> {cliques} cliques, {len(docs)} objects: "
        f"graph {t1 - t0:.3f}s, compile {t2 - t1:.3f}s, validate {t3 - t2:.3f}s, "
        f"compile+validate {t3 - t1:.3f}s"
    )
    registry_bench(crds)


if __name__ == "__main__":
    main()
