"""Compile a pipeline reference to validated manifests: what ``compile``, ``validate`` and ``deploy`` share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grove_pipelines import yamlio
from grove_pipelines.grove.cluster import GroveCluster
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.grove.validate import ObjectReport, check_documents, load_crds, validate_documents

__all__ = ["MANIFEST_SUFFIXES", "compile_ref", "validate_target"]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def _documents(
    ref: str, *, namespace: str | None, image: str | None, default_namespace: str = "default"
) -> list[dict[str, Any]]:
    from grove_pipelines.loader import load_graph  # the loader imports user code: only when asked

    graph = load_graph(ref)
    return compile_graph(
        graph, namespace=namespace, image=image, default_namespace=default_namespace
    ).documents()


def compile_ref(
    ref: str, *, namespace: str | None = None, image: str | None = None, default_namespace: str = "default"
) -> list[dict[str, Any]]:
    """The PodCliqueSet of pipeline ``ref`` then the objects beside it, each checked against the CRD
    schema and Grove's webhook rules (``ManifestRejectedError`` otherwise).

    The namespace is ``namespace`` (``-n``), else the one the pipeline declares, else ``default_namespace``
    (``deploy`` passes the kubeconfig context's, as kubectl does).
    """
    documents = _documents(ref, namespace=namespace, image=image, default_namespace=default_namespace)
    validate_documents(documents, strict=True, defaults=False)
    return documents


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
    docs = _documents(target, namespace=None, image=None)
    return check_documents(docs, crds=crds, strict=True, defaults=False, cluster=cluster, old=old)
