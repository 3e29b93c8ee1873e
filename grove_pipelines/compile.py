"""Compile a pipeline reference to validated manifests: the one path ``compile``, ``validate``, ``deploy``,
``diff`` and ``run`` share, from user code to graph to documents.

``compile_pipeline`` imports the user's module once, builds the graph once (the graph keeps the stage
objects, so nothing downstream scans again), compiles it, and checks the result against the CRD schema
and Grove's webhook rules. Warnings (stages never called) and notes (names shortened to fit Grove's
budgets) come back with the documents, for the caller to print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grove_pipelines import yamlio
from grove_pipelines.errors import GraphError
from grove_pipelines.graph import PipelineGraph
from grove_pipelines.grove.cluster import GroveCluster
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.grove.validate import ObjectReport, check_documents, load_crds, validate_documents

__all__ = ["MANIFEST_SUFFIXES", "CompiledRef", "compile_pipeline", "compile_ref", "validate_target"]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class CompiledRef:
    """A compiled pipeline: its graph, its documents (PodCliqueSet first), warnings and notes."""

    graph: PipelineGraph
    documents: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """What the graph warns about (stages defined but never called)."""
        return self.graph.warnings


def _strict(graph: PipelineGraph) -> None:
    if graph.warnings:
        more = f" (and {len(graph.warnings) - 1} more)" if len(graph.warnings) > 1 else ""
        raise GraphError(f"--strict: {graph.warnings[0]}{more}")


def _compile(
    ref: str, *, namespace: str | None, image: str | None, default_namespace: str, strict: bool
) -> CompiledRef:
    from grove_pipelines.loader import load_graph  # the loader imports user code: only when asked

    graph = load_graph(ref)
    if strict:
        _strict(graph)
    compiled = compile_graph(graph, namespace=namespace, image=image, default_namespace=default_namespace)
    return CompiledRef(graph, compiled.documents(), list(compiled.notes))


def compile_pipeline(
    ref: str,
    *,
    namespace: str | None = None,
    image: str | None = None,
    default_namespace: str = "default",
    strict: bool = False,
) -> CompiledRef:
    """The graph and validated documents of pipeline ``ref`` (``ManifestRejectedError`` if Grove would refuse).

    The namespace is ``namespace`` (``-n``), else the one the pipeline declares, else ``default_namespace``
    (``deploy`` passes the kubeconfig context's, as kubectl does). ``strict`` makes the graph's warnings
    (stages defined but never called) an error.
    """
    result = _compile(
        ref, namespace=namespace, image=image, default_namespace=default_namespace, strict=strict
    )
    validate_documents(result.documents, strict=True, defaults=False)
    return result


def compile_ref(
    ref: str, *, namespace: str | None = None, image: str | None = None, default_namespace: str = "default"
) -> list[dict[str, Any]]:
    """The validated documents of pipeline ``ref`` (``compile_pipeline`` without graph, warnings, notes)."""
    return compile_pipeline(
        ref, namespace=namespace, image=image, default_namespace=default_namespace
    ).documents


def validate_target(
    target: str,
    *,
    crd_dir: str | Path | None = None,
    cluster: GroveCluster | None = None,
    old: list[Any] | None = None,
) -> list[ObjectReport]:
    """Reports for a manifest file (defaulted as Grove would) or a pipeline ref (compiled, checked strictly),
    judged against ``cluster`` (release, operator config, bindings); an update of the ``old`` live objects."""
    crds = load_crds(crd_dir)
    if Path(target).suffix in MANIFEST_SUFFIXES:
        docs = yamlio.load_all_file(target)
        return check_documents(docs, crds=crds, strict=False, defaults=True, cluster=cluster, old=old)
    compiled = _compile(target, namespace=None, image=None, default_namespace="default", strict=False)
    return check_documents(
        compiled.documents, crds=crds, strict=True, defaults=False, cluster=cluster, old=old
    )
