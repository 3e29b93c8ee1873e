"""`compile_ref`: load, compile and validate; what the compiler's spec checks miss, admission catches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from grove_pipelines.compile import compile_ref, validate_target
from grove_pipelines.errors import LoadError, ManifestRejectedError

WritePipeline = Callable[..., Path]

SOURCE = """
from grove_pipelines import Autoscaling, pipeline, stage

@stage(replicas=3, min_available=2, autoscaling=Autoscaling(min_replicas={low}, max_replicas=5))
async def tool(x: str) -> str:
    return x

@pipeline(name="scaled")
async def body(q: str) -> str:
    return await tool(q)
"""


def test_compile_ref_returns_the_pcs_first(write_pipeline: WritePipeline) -> None:
    write_pipeline(SOURCE.format(low=2))
    docs = compile_ref("user_pipeline.py", namespace="ns")
    assert [d["kind"] for d in docs] == [
        "PodCliqueSet",
        "Service",
        "Service",
        "NetworkPolicy",
        "NetworkPolicy",
    ]
    tool = docs[0]["spec"]["template"]["cliques"][1]["spec"]
    assert tool["autoScalingConfig"]["minReplicas"] == 2 and tool["minAvailable"] == 2


def test_admission_catches_autoscaling_below_the_gang_minimum(write_pipeline: WritePipeline) -> None:
    write_pipeline(SOURCE.format(low=1))
    with pytest.raises(ManifestRejectedError) as info:
        compile_ref("user_pipeline.py")
    assert [(p.rule, p.path) for p in info.value.problems] == [
        ("autoscaling-bounds", "spec.template.cliques[1].spec.autoScalingConfig.minReplicas")
    ]
    reports = validate_target("user_pipeline.py")
    assert not reports[0].ok and all(r.ok for r in reports[1:])


def test_unknown_ref(write_pipeline: WritePipeline) -> None:
    with pytest.raises(LoadError):
        compile_ref("missing.py")
