"""grove-pipelines: multi-model and agentic inference pipelines as decorated Python, on NVIDIA Grove.

Write stages and a pipeline::

    from grove_pipelines import PD, llm, pipeline, stage

    chat = llm("chat", model="Qwen/Qwen3-8B", disaggregated=PD())

    @stage
    async def retrieve(question: str) -> list[str]: ...

    @pipeline(name="rag")
    async def rag(question: str) -> dict:
        docs = await retrieve(question)
        return {"answer": await chat.chat(f"{docs}\\n{question}")}

then ``grove-pipelines run rag.py`` on one machine or ``grove-pipelines deploy rag.py`` on Grove.
"""

from __future__ import annotations

import typing as _typing

from grove_pipelines._lazy import lazy_exports as _lazy_exports
from grove_pipelines.errors import GrovePipelinesError

if _typing.TYPE_CHECKING:
    from grove_pipelines.sdk import LLM, Pipeline, Stage, llm, pipeline, stage
    from grove_pipelines.spec import PD, Autoscaling, EntrySpec, Resources, Role, Topology

__all__ = [
    "LLM",
    "PD",
    "Autoscaling",
    "EntrySpec",
    "GrovePipelinesError",
    "Pipeline",
    "Resources",
    "Role",
    "Stage",
    "Topology",
    "llm",
    "pipeline",
    "stage",
]

__version__ = "0.1.0"

# Loaded on first use, so that importing one submodule (the runtime needs only ``errors``) does not
# load the SDK and the spec models with it.
__getattr__, __dir__ = _lazy_exports(
    __name__,
    {
        **dict.fromkeys(("LLM", "Pipeline", "Stage", "llm", "pipeline", "stage"), "grove_pipelines.sdk"),
        **dict.fromkeys(
            ("PD", "Autoscaling", "EntrySpec", "Resources", "Role", "Topology"), "grove_pipelines.spec"
        ),
    },
)
