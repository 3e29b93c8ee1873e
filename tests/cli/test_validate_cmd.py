"""`grove-pipelines validate`: `ok:` per object, or one `error:` line per problem with path and rule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from grove_pipelines import yamlio
from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.spec import LLMSpec, PipelineSpec, PythonStageSpec
from tests.cli.test_compile_cmd import PIPELINE, run_cli

WritePipeline = Callable[..., Path]


def _manifest(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    graph = PipelineGraph(
        PipelineSpec(name="demo", module="demo.py"),
        [PythonStageSpec(name="tool"), LLMSpec(name="helper", model="m")],
        [(ENTRY, "tool"), ("tool", "helper")],
    )
    docs = compile_graph(graph).documents()
    return tmp_path / "demo.yaml", docs


def _write(path: Path, docs: list[dict[str, Any]]) -> str:
    path.write_text(yamlio.dump_all(docs))
    return str(path)


def test_a_valid_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, docs = _manifest(tmp_path)
    code, out, err = run_cli(["validate", _write(path, docs)], capsys)
    assert code == 0, err
    assert out.splitlines() == [
        "ok: PodCliqueSet/demo", "ok: Service/demo", "ok: Service/demo-tool",
        "ok: ServiceAccount/demo-router", "ok: Role/demo-router", "ok: RoleBinding/demo-router",
        "ok: NetworkPolicy/demo-frontend", "ok: NetworkPolicy/demo-tool", "ok: NetworkPolicy/demo-helper",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda pcs: pcs["spec"].update(replicas=0),
            "spec.replicas: replicas is 0: a PodCliqueSet with 0 replicas creates nothing [pcs-replicas]",
        ),
        (
            lambda pcs: pcs["spec"]["template"]["cliques"][1]["spec"].update(replica=2),
            "spec.template.cliques[1].spec.replica: unknown field [schema.unknown-field]",
        ),
        (
            lambda pcs: pcs["metadata"].update(name="a-pipeline-name-far-too-long-for-grove-budget"),
            (
                "spec.template.cliques[0].name: 'a-pipeline-name-far-too-long-for-grove-budget' + 'frontend' is 53 "
                "characters, over Grove's budget of 45 [name-budget]"
            ),
        ),
    ],
    ids=["replicas-0", "unknown-field", "name-budget"],
)
def test_rejections_name_rule_and_path(
    edit: Callable[[dict[str, Any]], None], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, docs = _manifest(tmp_path)
    edit(docs[0])
    code, out, err = run_cli(["validate", _write(path, docs)], capsys)
    assert code == 1
    subject = f"PodCliqueSet/{docs[0]['metadata']['name']}"
    assert f"error: {subject}: {expected}" in err.splitlines()
    assert f"ok: {subject}" not in out and "ok: Service/demo" in out


def test_validate_a_pipeline_ref(write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]) -> None:
    write_pipeline(PIPELINE.format(name="refdemo"))
    code, out, err = run_cli(["validate", "user_pipeline.py"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == "ok: PodCliqueSet/refdemo"


def test_validate_with_a_crd_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, docs = _manifest(tmp_path)
    crd_dir = tmp_path / "crds"
    crd_dir.mkdir()
    code, _, err = run_cli(["validate", _write(path, docs), "--crd", str(crd_dir)], capsys)
    assert (code, err.strip()) == (1, f"error: --crd {crd_dir}: no CustomResourceDefinition found")


def test_validate_bad_yaml_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: [unclosed\n")
    code, _, err = run_cli(["validate", str(path)], capsys)
    assert code == 1 and err.count("\n") == 1 and err.startswith(f"error: {path}: invalid YAML")


SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "grove-samples"


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/grove-samples is not present")
def test_grove_samples_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["validate", str(SAMPLES / "simple__simple1.yaml")], capsys)
    assert (code, out) == (0, "ok: PodCliqueSet/simple1\n")
    broken = (
        SAMPLES
        / "user-guide__02_pod-and-resource-naming-conventions__multinode-disaggregated-with-frontend.yaml"
    )
    code, out, err = run_cli(["validate", str(broken)], capsys)
    assert code == 1 and out == ""
    assert err.splitlines() == [
        (
            "error: PodCliqueSet/mn-disagg: spec.template.cliques[0].spec.roleName: required field is missing "
            "[schema.required]"
        )
    ]
