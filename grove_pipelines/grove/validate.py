"""Validate manifests offline: CRD schema + Grove's webhook rules for Grove kinds, models for the rest.

``check_documents`` returns one ``ObjectReport`` per document; ``validate_documents`` raises
``ManifestRejectedError`` for the first rejected object. Manifests grove-pipelines did not write are
defaulted first, as Grove's mutating webhook would (``defaults=True``); the compiler's own output is
checked as written, plus its promises (``strict=True``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from grove_pipelines import yamlio
from grove_pipelines.errors import AdmissionError, ManifestError, ManifestRejectedError
from grove_pipelines.grove import core
from grove_pipelines.grove.admission import check_podcliqueset
from grove_pipelines.grove.defaulting import apply_defaults
from grove_pipelines.grove.schema import format_path, validate_object

__all__ = ["CRDs", "ObjectReport", "check_documents", "check_object", "load_crds", "validate_documents"]

CRDs = dict[tuple[str, str], dict[str, Any]]
"""(API group, kind) → CustomResourceDefinition."""

_CORE_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("v1", "Service"): core.Service,
    ("v1", "ServiceAccount"): core.ServiceAccount,
    ("rbac.authorization.k8s.io/v1", "Role"): core.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): core.RoleBinding,
    ("networking.k8s.io/v1", "NetworkPolicy"): core.NetworkPolicy,
}
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass
class ObjectReport:
    """The verdict on one document: its problems, or ``skipped`` when no schema is known for its kind."""

    kind: str
    name: str
    problems: list[AdmissionError] = field(default_factory=list)
    skipped: bool = False

    @property
    def subject(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def ok(self) -> bool:
        return not self.problems


def _crds_from(paths: list[Path]) -> CRDs:
    found: CRDs = {}
    for path in paths:
        for doc in yamlio.load_all_file(path):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                spec = doc.get("spec", {})
                found[(spec.get("group", ""), spec.get("names", {}).get("kind", ""))] = doc
    return found


@lru_cache(maxsize=1)
def _vendored() -> CRDs:
    folder = resources.files("grove_pipelines.grove") / "crds"
    return _crds_from(sorted(Path(str(folder)).glob("*.yaml")))


def load_crds(directory: str | Path | None = None) -> CRDs:
    """The CRDs in ``directory`` (``*.yaml``/``*.yml``/``*.json``), or the vendored Grove CRDs."""
    if directory is None:
        return _vendored()
    folder = Path(directory)
    if not folder.is_dir():
        raise ManifestError(f"--crd {directory}: not a directory")
    found = _crds_from(sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json")))
    if not found:
        raise ManifestError(f"--crd {directory}: no CustomResourceDefinition found")
    return found


def _model_problems(obj: dict[str, Any], model: type[BaseModel]) -> list[AdmissionError]:
    try:
        model.model_validate(obj)
    except ValidationError as exc:
        return [
            AdmissionError(err["msg"], rule="model", path=format_path(err["loc"])) for err in exc.errors()
        ]
    name = obj["metadata"]["name"]
    if obj.get("kind") == "Service" and not _DNS_1035.match(name):
        return [
            AdmissionError(f"{name!r} is not a DNS-1035 label", rule="metadata-name", path="metadata.name")
        ]
    return []


def check_object(obj: Any, crds: CRDs, *, strict: bool = False, defaults: bool = True) -> ObjectReport:
    """Every problem of one document."""
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
        return ObjectReport(
            "?", "?", [AdmissionError("not a Kubernetes object", rule="manifest", path="(object)")]
        )
    api_version, kind = str(obj.get("apiVersion", "")), obj["kind"]
    name = str((obj.get("metadata") or {}).get("name", "?")) if isinstance(obj.get("metadata"), dict) else "?"
    group = api_version.rpartition("/")[0]
    crd = crds.get((group, kind))
    if crd is None:
        model = _CORE_MODELS.get((api_version, kind))
        if model is None:
            return ObjectReport(kind, name, skipped=True)
        return ObjectReport(kind, name, _model_problems(obj, model))
    problems = validate_object(obj, crd)
    if kind == "PodCliqueSet" and group == "grove.io":
        seen = {p.path for p in problems}
        admitted = apply_defaults(obj) if defaults else obj
        problems += [p for p in check_podcliqueset(admitted, strict=strict) if p.path not in seen]
    return ObjectReport(kind, name, sorted(problems, key=lambda p: p.path))


def _expand(documents: list[Any]) -> list[Any]:
    out: list[Any] = []
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out += doc["items"]
        else:
            out.append(doc)
    return out


def check_documents(
    documents: list[Any], *, crds: CRDs | None = None, strict: bool = False, defaults: bool = True
) -> list[ObjectReport]:
    """One report per document (``kind: List`` documents are expanded)."""
    crds = load_crds() if crds is None else crds
    return [check_object(doc, crds, strict=strict, defaults=defaults) for doc in _expand(documents)]


def validate_documents(
    documents: list[Any], *, crds: CRDs | None = None, strict: bool = True, defaults: bool = False
) -> None:
    """Raise ``ManifestRejectedError`` (all problems of the first rejected object) unless every object passes."""
    for report in check_documents(documents, crds=crds, strict=strict, defaults=defaults):
        if report.problems:
            raise ManifestRejectedError(report.subject, report.problems)
