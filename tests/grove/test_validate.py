"""Offline validation of whole manifests: Grove's samples, broken variants, and the other object kinds."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from grove_pipelines import yamlio
from grove_pipelines.errors import ManifestError, ManifestRejectedError
from grove_pipelines.grove.validate import check_documents, load_crds, validate_documents

SAMPLES = Path(__file__).resolve().parent / "data" / "grove-samples"  # copies: a clone runs them too
# The samples README names only the first as lacking roleName; the standalone env-vars sample lacks it
# too (its only clique has no roleName), and the CRD requires it, so a real API server rejects both.
WITHOUT_ROLE_NAME = {
    "user-guide__02_pod-and-resource-naming-conventions__multinode-disaggregated-with-frontend.yaml",
    "user-guide__03_environment-variables-for-pod-discovery__standalone-env-vars.yaml",
}


def _sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: p.stem)
def test_grove_samples(path: Path) -> None:
    reports = check_documents(yamlio.load_all_file(path))
    assert len(reports) == 1 and reports[0].kind == "PodCliqueSet"
    problems = [(p.rule, p.path) for p in reports[0].problems]
    if path.name in WITHOUT_ROLE_NAME:
        assert problems == [("schema.required", "spec.template.cliques[0].spec.roleName")]
    else:
        assert problems == []


def test_samples_are_accepted_only_because_of_defaulting() -> None:
    doc = yamlio.load_all_file(SAMPLES / "simple__simple1.yaml")[0]
    strict = check_documents([doc], defaults=False, strict=True)[0]
    assert {p.rule for p in strict.problems} == {"explicit-fields"}


def test_broken_sample_variants_are_rejected() -> None:
    base = yamlio.load_all_file(SAMPLES / "simple__simple3-explicit-startup-order.yaml")[0]
    variants: list[tuple[str, str, str]] = []
    doc = copy.deepcopy(base)
    doc["spec"]["template"]["cliques"][0]["spec"]["startsAfter"] = ["pcd"]  # pca -> pcd -> pcb -> pca
    variants.append(("starts-after-cycle", "spec.template.cliques", _first(doc, "starts-after-cycle")))
    doc = copy.deepcopy(base)
    doc["spec"]["template"]["podCliqueScalingGroups"][0]["minAvailable"] = 4
    variants.append(
        (
            "min-available",
            "spec.template.podCliqueScalingGroups[0].minAvailable",
            _first(doc, "min-available"),
        )
    )
    doc = copy.deepcopy(base)
    doc["spec"]["template"]["cliques"][1]["spec"]["autoScalingConfig"] = {"maxReplicas": 4}
    variants.append(("scaling-group-autoscaling", "spec.template.cliques[1].spec.autoScalingConfig",
                     _first(doc, "scaling-group-autoscaling")))  # fmt: skip
    for rule, expected, found in variants:
        assert found == expected, rule


def _first(doc: dict[str, Any], rule: str) -> str:
    return next(p.path for p in check_documents([doc])[0].problems if p.rule == rule)


def test_core_objects_are_checked_against_the_models(rag_docs: list[dict[str, Any]]) -> None:
    service = copy.deepcopy(next(d for d in rag_docs if d["kind"] == "Service"))
    service["spec"]["ports"][0]["port"] = "http"
    bad_name = copy.deepcopy(service)
    bad_name["spec"]["ports"][0]["port"] = 80
    bad_name["metadata"]["name"] = "9lives"
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
    reports = check_documents([service, bad_name, deployment, "just a string"])
    assert [(p.rule, p.path) for p in reports[0].problems] == [("model", "spec.ports[0].port")]
    assert [(p.rule, p.path) for p in reports[1].problems] == [("metadata-name", "metadata.name")]
    assert reports[2].skipped and reports[2].ok
    assert [(p.rule, p.path) for p in reports[3].problems] == [("manifest", "(object)")]


def test_list_documents_are_expanded(rag_docs: list[dict[str, Any]]) -> None:
    reports = check_documents(
        [{"apiVersion": "v1", "kind": "List", "items": rag_docs}], strict=True, defaults=False
    )
    assert [r.subject for r in reports][:2] == ["PodCliqueSet/rag", "Service/rag"]
    assert all(r.ok for r in reports)


def test_validate_documents_raises_with_every_problem(rag_docs: list[dict[str, Any]]) -> None:
    validate_documents(rag_docs)
    rag_docs[0]["spec"]["replicas"] = "one"
    rag_docs[0]["spec"]["template"]["cliques"][1]["spec"]["extra"] = True
    with pytest.raises(ManifestRejectedError) as info:
        validate_documents(rag_docs)
    assert [(p.rule, p.path) for p in info.value.problems] == [
        ("schema.type", "spec.replicas"),
        ("schema.unknown-field", "spec.template.cliques[1].spec.extra"),
    ]
    assert str(info.value).startswith("PodCliqueSet/rag rejected, 2 problems: spec.replicas:")


def test_crd_directory(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not a directory"):
        load_crds(tmp_path / "missing")
    with pytest.raises(ManifestError, match="no CustomResourceDefinition"):
        load_crds(tmp_path)
    source = (
        Path(__file__).resolve().parents[2]
        / "grove_pipelines"
        / "grove"
        / "crds"
        / "grove.io_podcliquesets.yaml"
    )
    (tmp_path / "pcs.yaml").write_bytes(source.read_bytes())
    assert list(load_crds(tmp_path)) == [("grove.io", "PodCliqueSet")]
