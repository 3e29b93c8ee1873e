"""Plain-data descriptions of stages and pipelines: what the SDK records and the compiler reads.

The SDK's decorators turn user code into these models; the graph holds them; the Grove compiler and
the runtime read them. They hold no Python callables, so everything downstream of the graph can be
tested with data alone.
"""

from __future__ import annotations

import typing as _typing

from grove_pipelines._lazy import lazy_exports as _lazy_exports

if _typing.TYPE_CHECKING:
    from grove_pipelines.spec.models import (
        PD,
        Autoscaling,
        EntrySpec,
        LLMSpec,
        PipelineSpec,
        PythonStageSpec,
        Resources,
        Role,
        RoleSpec,
        StageSpec,
        Topology,
    )

__all__ = [
    "PD",
    "Autoscaling",
    "EntrySpec",
    "LLMSpec",
    "PipelineSpec",
    "PythonStageSpec",
    "Resources",
    "Role",
    "RoleSpec",
    "StageSpec",
    "Topology",
]

# Loaded on first use: the runtime imports ``spec.endpoints`` alone, without the models.
__getattr__, __dir__ = _lazy_exports(__name__, dict.fromkeys(__all__, "grove_pipelines.spec.models"))
