"""Checks before anything is written: the cluster answers, Grove is installed, the namespace exists, and
the PodCliqueSet passes the schema of the CRD the cluster actually serves (not only our vendored copy:
an older or newer Grove may serve another one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from grove_pipelines.errors import ManifestRejectedError
from grove_pipelines.grove.schema import validate_object
from grove_pipelines.kube.client import KubeClient, display
from grove_pipelines.kube.errors import (
    GroveNotInstalledError,
    KubeForbiddenError,
    KubeNotFoundError,
    NamespaceNotFoundError,
)
from grove_pipelines.kube.manifests import PCS_API_VERSION, namespaces_of

__all__ = ["CRD_NAME", "Report", "check_cluster", "ensure_namespaces", "namespace_exists", "served_crd"]

CRD_NAME = "podcliquesets.grove.io"
Report = Callable[[str], None]
_seen: dict[
    tuple[str, str], dict[str, Any]
] = {}  # one dict per CRD state: the schema validator caches by object


def _not_installed(client: KubeClient) -> GroveNotInstalledError:
    return GroveNotInstalledError(
        f"Grove is not installed on the cluster at {client.host}: it serves no {PCS_API_VERSION} PodCliqueSet "
        f"(CustomResourceDefinition {CRD_NAME}); install Grove first, see deploy/README.md"
    )


def served_crd(client: KubeClient, report: Report) -> dict[str, Any] | None:
    """The PodCliqueSet CRD as the cluster serves it; None when we may not read CRDs (then discovery decides)."""
    try:
        crd = client.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD_NAME)
    except KubeForbiddenError:
        report(
            f"note: not allowed to read CustomResourceDefinition {CRD_NAME}; checked Grove by discovery only, "
            "the manifest was validated against the vendored CRD"
        )
        try:
            client.resource(PCS_API_VERSION, "PodCliqueSet")
        except KubeNotFoundError:
            raise _not_installed(client) from None
        return None
    if crd is None:
        raise _not_installed(client)
    meta = crd.get("metadata") or {}
    crd = _seen.setdefault((str(meta.get("uid")), str(meta.get("resourceVersion"))), crd)
    versions = [v.get("name") for v in crd.get("spec", {}).get("versions", []) if v.get("served", True)]
    if PCS_API_VERSION.rsplit("/", 1)[1] not in versions:
        raise GroveNotInstalledError(
            f"the cluster's Grove serves PodCliqueSet versions {versions}, not {PCS_API_VERSION}; "
            "upgrade Grove (see deploy/README.md)"
        )
    return crd


def check_cluster(client: KubeClient, manifests: list[dict[str, Any]], report: Report) -> None:
    """Reachable, Grove installed, and every PodCliqueSet valid against the served CRD schema."""
    client.server_version()
    crd = served_crd(client, report)
    if crd is None:
        return
    for obj in manifests:
        if obj.get("kind") == "PodCliqueSet":
            problems = validate_object(obj, crd)
            if problems:
                raise ManifestRejectedError(f"{display(obj)} (against the CRD the cluster serves)", problems)


def namespace_exists(client: KubeClient, namespace: str) -> bool:
    """True when the namespace exists, or when we may not read namespaces (the writes will tell)."""
    try:
        return client.get("v1", "Namespace", namespace) is not None
    except KubeForbiddenError:
        return True


def ensure_namespaces(
    client: KubeClient, manifests: list[dict[str, Any]], *, create: bool, dry_run: bool
) -> list[str]:
    """Every target namespace exists, or is created when ``create`` (the names created are returned).

    A namespace we may not read (namespace-scoped credentials) is assumed to exist: the apply will tell.
    """
    created = []
    for ns in namespaces_of(manifests):
        if namespace_exists(client, ns):
            continue
        if not create:
            raise NamespaceNotFoundError(ns)
        # create, not apply: the deployer needs no cluster-wide patch right on namespaces
        client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, dry_run=dry_run)
        created.append(ns)
    return created
