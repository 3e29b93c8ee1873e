"""Grove API models (pydantic mirrors), the compiler (graph → PodCliqueSet) and offline admission."""

from __future__ import annotations

from grove_pipelines.grove.compiler import CompiledPipeline, compile_graph
from grove_pipelines.grove.podcliqueset import PodCliqueSet
from grove_pipelines.grove.schema import validate_object
from grove_pipelines.grove.validate import ObjectReport, check_documents, load_crds, validate_documents

__all__ = [
    "CompiledPipeline",
    "ObjectReport",
    "PodCliqueSet",
    "check_documents",
    "compile_graph",
    "load_crds",
    "validate_documents",
    "validate_object",
]
