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
            lambda pcs: pcs["spec"].update(replicas=-1),
            "spec.replicas: replicas must not be negative, got -1 [pcs-replicas]",
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
    ids=["replicas-negative", "unknown-field", "name-budget"],
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
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: {path}: invalid YAML")


SAMPLES = Path(__file__).resolve().parents[1] / "grove" / "data" / "grove-samples"


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


def _pcs_file(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> str:
    path, docs = _manifest(tmp_path)
    edit(docs[0])
    return _write(path, docs[:1])


def _all_cliques(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(pcs: dict[str, Any]) -> None:
        for clique in pcs["spec"]["template"]["cliques"]:
            clique["spec"]["podSpec"][key] = value

    return edit


def test_replicas_zero_and_omitted_are_admitted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for edit in (lambda p: p["spec"].update(replicas=0), lambda p: p["spec"].pop("replicas")):
        code, out, err = run_cli(["validate", _pcs_file(tmp_path, edit)], capsys)
        assert (code, out) == (0, "ok: PodCliqueSet/demo\n"), err


def test_the_operator_config_decides_the_scheduler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _pcs_file(tmp_path, _all_cliques("schedulerName", "volcano"))
    code, _, err = run_cli(["validate", manifest], capsys)
    assert code == 1 and "[scheduler-enabled]" in err  # a default install enables default + kai only
    config = tmp_path / "config.yaml"
    config.write_text(
        "apiVersion: operator.config.grove.io/v1alpha1\nkind: OperatorConfiguration\n"
        "scheduler:\n  profiles: [{name: default-scheduler}, {name: volcano}]\n"
    )
    code, out, err = run_cli(["validate", manifest, "--grove-config", str(config)], capsys)
    assert (code, out) == (0, "ok: PodCliqueSet/demo\n"), err


def test_kai_queue_depends_on_the_release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _pcs_file(tmp_path, _all_cliques("schedulerName", "kai-scheduler"))
    code, _, err = run_cli(["validate", manifest, "--grove-version", "main"], capsys)
    assert code == 1 and "[kai-queue]" in err
    code, _, err = run_cli(["validate", manifest, "--grove-version", "v0.1.0-alpha.11"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["validate", manifest, "--grove-version", "v9"], capsys)
    assert code == 1 and err.startswith("error: --grove-version v9: not a known Grove release")


def test_topology_needs_tas_and_a_binding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    constraint = {"topologyName": "fabric", "pack": {"required": "rack"}}
    manifest = _pcs_file(tmp_path, lambda p: p["spec"]["template"].update(topologyConstraint=constraint))
    code, _, err = run_cli(["validate", manifest], capsys)
    assert code == 1 and "[topology-disabled]" in err
    config = tmp_path / "values.yaml"
    config.write_text("config:\n  topologyAwareScheduling:\n    enabled: true\n")
    code, _, err = run_cli(["validate", manifest, "--grove-config", str(config)], capsys)
    assert code == 1 and "ClusterTopologyBinding 'fabric' not found [topology-binding]" in err
    binding = tmp_path / "ctb.yaml"
    binding.write_text(
        "apiVersion: grove.io/v1alpha1\nkind: ClusterTopologyBinding\nmetadata: {name: fabric}\n"
        "spec:\n  levels: [{domain: zone, key: topology.kubernetes.io/zone}, {domain: rack, key: r}]\n"
    )
    args = ["validate", manifest, "--grove-config", str(config), "--topology", str(binding)]
    code, out, err = run_cli(args, capsys)
    assert (code, out) == (0, "ok: PodCliqueSet/demo\n"), err


def test_an_update_is_checked_against_the_live_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = tmp_path / "live.yaml"
    live.write_text(Path(_pcs_file(tmp_path, lambda p: None)).read_text())
    new = _pcs_file(tmp_path, lambda p: p["spec"]["template"]["cliques"][0]["spec"].update(roleName="other"))
    code, _, err = run_cli(["validate", new, "--old", str(live)], capsys)
    assert (
        code == 1
        and "spec.template.cliques[0].spec.roleName: clique 'frontend': roleName is immutable" in err
    )
    code, _, err = run_cli(["validate", new], capsys)
    assert code == 0, err


@pytest.mark.parametrize("text", ["just a string\n", "- 1\n- 2\n", "kind: PodCliqueSet\n", "{}\n", ""])
def test_not_a_kubernetes_object_exits_2(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    code, out, err = run_cli(["validate", str(path)], capsys)
    assert code == 2 and out == "" and err.startswith("error:") and "Traceback" not in err


def test_v1beta1_is_not_judged_without_its_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Grove's newest releases serve grove.io/v1beta1; until a targeted release vendors that schema,
    validate says so instead of guessing."""
    manifest = _pcs_file(tmp_path, lambda p: p.update(apiVersion="grove.io/v1beta1"))
    code, out, err = run_cli(["validate", manifest], capsys)
    assert code == 1 and out == ""
    assert "apiVersion: the PodCliqueSet CRD has no version 'grove.io/v1beta1' [schema.version]" in err
