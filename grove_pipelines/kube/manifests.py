"""The objects a deploy applies: from a pipeline REF (compiled) or a YAML manifest, made ready to apply.

Ready means: every object in its namespace, labelled as part of its PodCliqueSet (the label Grove
puts on the pods and PodCliques it makes, so one selector finds everything of a pipeline), managed by
grove-pipelines, and in apply order (service accounts and RBAC before the pods that use them).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grove_pipelines import yamlio
from grove_pipelines.compile import MANIFEST_SUFFIXES, compile_pipeline
from grove_pipelines.errors import ManifestError

__all__ = [
    "MANAGED_BY",
    "PART_OF",
    "PCS_API_VERSION",
    "is_managed",
    "load_manifests",
    "namespaces_of",
    "pcs_of",
    "prepare",
]

PCS_API_VERSION = "grove.io/v1alpha1"
PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
_CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ClusterTopologyBinding",
    "PriorityClass",
}
_ORDER = [
    "Namespace",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "Role",
    "RoleBinding",
    "Service",
    "NetworkPolicy",
    "PodCliqueSet",
]


def is_managed(obj: dict[str, Any]) -> bool:
    """Whether grove-pipelines deployed ``obj`` (its managed-by label): only those are ever deleted."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY) == "grove-pipelines"


def load_manifests(
    ref: str,
    *,
    namespace: str | None = None,
    image: str | None = None,
    default_namespace: str = "default",
    report: Callable[[str], None] = lambda line: None,
) -> list[dict[str, Any]]:
    """The manifests of ``ref``: a pipeline (``file.py[:name]``, ``module:name``) or a YAML/JSON manifest file.

    A pipeline is compiled (``grove_pipelines.compile``, the one path from code to documents) into
    ``namespace`` (``-n``), else the namespace it declares, else ``default_namespace`` (the kubeconfig
    context's); its warnings and notes (shortened names) go to ``report``.
    """
    if ref.endswith(MANIFEST_SUFFIXES):
        if image is not None:
            raise ManifestError(f"--image applies to pipelines, not to the manifest file {ref}")
        if not Path(ref).is_file():
            raise ManifestError(f"manifest file {ref} does not exist")
        docs = yamlio.load_all_file(ref)
        for index, doc in enumerate(docs):
            if (
                not isinstance(doc, dict)
                or not doc.get("apiVersion")
                or not doc.get("kind")
                or not (doc.get("metadata") or {}).get("name")
            ):
                raise ManifestError(
                    f"{ref}: document {index + 1} is not a Kubernetes object (apiVersion, kind, "
                    "metadata.name)"
                )
        return docs
    result = compile_pipeline(ref, namespace=namespace, image=image, default_namespace=default_namespace)
    for warning in result.warnings:
        report(f"warning: {warning}")
    for note in result.notes:
        report(f"note: {note}")
    return result.documents


def namespaces_of(manifests: list[dict[str, Any]]) -> list[str]:
    """The namespaces the (prepared) manifests go into, sorted."""
    return sorted({str(ns) for m in manifests if (ns := (m.get("metadata") or {}).get("namespace"))})


def pcs_of(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The one PodCliqueSet among ``manifests``."""
    found = [
        m for m in manifests if m.get("kind") == "PodCliqueSet" and m.get("apiVersion") == PCS_API_VERSION
    ]
    if len(found) != 1:
        raise ManifestError(
            f"a pipeline deploys exactly one {PCS_API_VERSION} PodCliqueSet; found {len(found)}"
        )
    return found[0]


def prepare(
    manifests: list[dict[str, Any]], *, namespace: str | None, default_namespace: str
) -> list[dict[str, Any]]:
    """Copies of ``manifests`` with namespace and labels set, in apply order.

    ``namespace`` (``-n``) must agree with a namespace an object already names, as with kubectl;
    objects that name none get ``namespace`` or else ``default_namespace`` (the context's).
    """
    pcs_name = pcs_of(manifests)["metadata"]["name"]
    out = []
    for original in manifests:
        obj = copy.deepcopy(original)
        meta = obj.setdefault("metadata", {})
        if obj["kind"] not in _CLUSTER_SCOPED:
            own = meta.get("namespace")
            if namespace and own and own != namespace:
                raise ManifestError(
                    f"{obj['kind']} {meta['name']} names namespace {own!r}, which does not match -n {namespace}"
                )
            meta["namespace"] = own or namespace or default_namespace
        labels = meta.setdefault("labels", {})
        labels.setdefault(PART_OF, pcs_name)
        labels.setdefault(MANAGED_BY, "grove-pipelines")
        out.append(obj)
    rank = {kind: i for i, kind in enumerate(_ORDER)}
    return sorted(out, key=lambda o: rank.get(o["kind"], len(_ORDER) - 1))
