"""Spec models: the option rules users hit first (quantities, bounds, durations, names)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import grove_pipelines
from grove_pipelines.spec import Autoscaling, LLMSpec, PipelineSpec, PythonStageSpec, Resources, Topology


@pytest.mark.parametrize("value", ["500m", "2", "1.5", "4Gi", "128Mi", 3])
def test_quantities_accepted(value: object) -> None:
    assert Resources(cpu=value).cpu == str(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "kwargs", "fragment"),
    [
        (Autoscaling, {"min_replicas": 5, "max_replicas": 2}, "min_replicas (5) exceeds max_replicas (2)"),
        (Autoscaling, {"max_replicas": 2, "target_cpu_utilization": 80, "metrics": [{}]}, "not both"),
        (Topology, {"topology_name": "t"}, "set required or preferred"),
        (Topology, {"topology_name": "t", "required": "Rack"}, "not a topology domain"),
        (
            PythonStageSpec,
            {"name": "s", "replicas": 3, "autoscaling": {"max_replicas": 2}},
            "is below replicas",
        ),
        (PipelineSpec, {"name": "p", "termination_delay": "soon"}, "not a duration"),
        (PipelineSpec, {"name": "p", "termination_delay": "0s"}, "not a duration greater than 0"),
        (PipelineSpec, {"name": "x" * 64}, "not a DNS label"),
        (PipelineSpec, {"name": "p", "labels": {"grove-pipelines.io/stage": "x"}}, "set by the compiler"),
        (
            PythonStageSpec,
            {"name": "s", "labels": {"grove-pipelines.io/part-of": "x"}},
            "set by the compiler",
        ),
        (LLMSpec, {"name": "m", "model": "m", "gpus": 1, "tensor_parallel": 2}, "exceeds the role's GPUs"),
    ],
)
def test_invalid_options(model: type, kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        model(**kwargs)


def test_specs_are_frozen() -> None:
    spec = PythonStageSpec(name="s")
    with pytest.raises(ValidationError):
        spec.replicas = 2  # type: ignore[misc]


def test_public_surface_is_complete() -> None:
    assert len(set(grove_pipelines.__all__)) == len(grove_pipelines.__all__)
    public = {name for name in dir(grove_pipelines) if not name.startswith("_")}
    modules = {
        "annotations",
        "errors",
        "sdk",
        "spec",
        "graph",
        "loader",
        "cli",
        "grove",
        "kube",
        "local",
        "compile",
        "yamlio",
        "go_duration",
        "validation_summary",
    }
    assert set(grove_pipelines.__all__) == public - modules
