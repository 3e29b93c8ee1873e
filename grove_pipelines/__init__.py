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

from grove_pipelines.errors import GrovePipelinesError
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
