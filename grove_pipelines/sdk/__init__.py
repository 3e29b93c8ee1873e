"""What pipeline authors write: ``@stage``, ``llm(...)``, ``@pipeline``.

The decorators record; they do not compile. Each returns an object that holds a plain spec
(``grove_pipelines.spec``) and the user's callable, and that can be called like the original function:
the call goes through the runtime bound in ``grove_pipelines.sdk.invoke`` (in-process by default).
"""

from __future__ import annotations

from grove_pipelines.sdk.invoke import Invoker, bind_invoker, current_invoker
from grove_pipelines.sdk.llm import LLM, llm
from grove_pipelines.sdk.pipeline import Pipeline, pipeline
from grove_pipelines.sdk.stage import Stage, stage

__all__ = [
    "LLM",
    "Invoker",
    "Pipeline",
    "Stage",
    "bind_invoker",
    "current_invoker",
    "llm",
    "pipeline",
    "stage",
]
