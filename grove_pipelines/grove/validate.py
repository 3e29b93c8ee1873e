"""Validate manifests offline: CRD schema + Grove's webhook rules for Grove kinds, models for the rest.

``check_documents`` returns one ``ObjectReport`` per document; ``validate_documents`` raises
``ManifestRejectedError`` for the first rejected object. A Grove object goes through what the API
server does, in its order: nulls pruned and CRD defaults filled (``structural``), Grove's mutating
webhook (``defaults=True``, for manifests grove-pipelines did not write; the compiler's own output is
checked as written, plus its promises, ``strict=True``), the schema and CEL rules, and — only when
those pass, as the webhook is never called otherwise — Grove's validating webhook for the targeted
release and operator configuration (``cluster``), as a create or, given the live object, an update.
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
from grove_pipelines.grove import kube_objects
from grove_pipelines.grove.cluster import GroveCluster
from grove_pipelines.grove.defaulting import apply_defaults
from grove_pipelines.grove.gc_pause import gc_paused
from grove_pipelines.grove.schema import crd_schema, format_path, validate_object
from grove_pipelines.grove.structural import normalize
from grove_pipelines.grove.webhook.admit import admit

__all__ = [
    "CRDs",
    "ObjectReport",
    "check_documents",
    "check_object",
    "load_crds",
    "prepare",
    "validate_documents",
]

CRDs = dict[tuple[str, str], dict[str, Any]]
"""(API group, kind) → CustomResourceDefinition."""

_CORE_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("v1", "Service"): kube_objects.Service,
    ("v1", "ServiceAccount"): kube_objects.ServiceAccount,
    ("rbac.authorization.k8s.io/v1", "Role"): kube_objects.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): kube_objects.RoleBinding,
    ("networking.k8s.io/v1", "NetworkPolicy"): kube_objects.NetworkPolicy,
}
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass
class ObjectReport:
    """The verdict on one document: its problems (and warnings), or ``skipped`` when no schema is known
    for its kind; ``not_object`` when the document is not a Kubernetes object at all."""

    kind: str
    name: str
    problems: list[AdmissionError] = field(default_factory=list)
    skipped: bool = False
    warnings: list[AdmissionError] = field(default_factory=list)
    not_object: bool = False

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


def prepare(obj: dict[str, Any], crd: dict[str, Any], *, defaults: bool) -> dict[str, Any]:
    """``obj`` as the webhook sees it: nulls pruned, CRD defaults, then (``defaults``) Grove's defaulting."""
    body = normalize(obj, crd_schema(crd, str(obj.get("apiVersion", ""))))
    if defaults and body.get("kind") == "PodCliqueSet":
        body = apply_defaults(body)
    return body


def _not_object(message: str) -> ObjectReport:
    return ObjectReport(
        "?", "?", [AdmissionError(message, rule="manifest", path="(object)")], not_object=True
    )


def check_object(
    obj: Any,
    crds: CRDs,
    *,
    strict: bool = False,
    defaults: bool = True,
    cluster: GroveCluster | None = None,
    old: dict[str, Any] | None = None,
) -> ObjectReport:
    """Every problem of one document (an update of ``old`` when given)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str) or not obj["kind"]:
        return _not_object("not a Kubernetes object (a mapping with apiVersion and kind)")
    if not isinstance(obj.get("apiVersion"), str) or not obj["apiVersion"]:
        return _not_object("not a Kubernetes object: apiVersion is missing")
    api_version, kind = obj["apiVersion"], obj["kind"]
    meta = obj.get("metadata")
    name = str(meta.get("name", "?")) if isinstance(meta, dict) else "?"
    group = api_version.rpartition("/")[0]
    crd = crds.get((group, kind))
    if crd is None:
        model = _CORE_MODELS.get((api_version, kind))
        if model is None:
            return ObjectReport(kind, name, skipped=True)
        return ObjectReport(kind, name, _model_problems(obj, model))
    try:
        body = prepare(obj, crd, defaults=defaults)
    except ManifestError as exc:  # a version the vendored CRD does not serve (e.g. grove.io/v1beta1)
        return ObjectReport(kind, name, [AdmissionError(str(exc), rule="schema.version", path="apiVersion")])
    problems = validate_object(body, crd, update=old is not None)
    if problems or kind != "PodCliqueSet" or group != "grove.io":
        return ObjectReport(kind, name, problems)
    live = prepare(old, crd, defaults=True) if old is not None else None
    result = admit(body, cluster=cluster, strict=strict, old=live)
    return ObjectReport(kind, name, result.sorted(), warnings=result.warnings)


def _expand(documents: list[Any]) -> list[Any]:
    out: list[Any] = []
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out += doc["items"]
        else:
            out.append(doc)
    return out


@gc_paused
def check_documents(
    documents: list[Any],
    *,
    crds: CRDs | None = None,
    strict: bool = False,
    defaults: bool = True,
    cluster: GroveCluster | None = None,
    old: list[Any] | None = None,
) -> list[ObjectReport]:
    """One report per document (``kind: List`` documents are expanded); ``old`` holds live objects, and a
    document whose kind, namespace and name match one of them is checked as an update of it."""
    crds = load_crds() if crds is None else crds
    live = {_key(doc): doc for doc in _expand(old or []) if isinstance(doc, dict)}
    return [
        check_object(doc, crds, strict=strict, defaults=defaults, cluster=cluster, old=live.get(_key(doc)))
        for doc in _expand(documents)
    ]


def _key(doc: Any) -> tuple[str, str, str] | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
        return None
    meta = doc["metadata"]
    return (str(doc.get("kind")), str(meta.get("namespace") or "default"), str(meta.get("name")))


def validate_documents(
    documents: list[Any], *, crds: CRDs | None = None, strict: bool = True, defaults: bool = False
) -> None:
    """Raise ``ManifestRejectedError`` (all problems of the first rejected object) unless every object passes."""
    for report in check_documents(documents, crds=crds, strict=strict, defaults=defaults):
        if report.problems:
            raise ManifestRejectedError(report.subject, report.problems)
