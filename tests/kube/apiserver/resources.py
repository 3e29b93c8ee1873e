"""What the double serves: built-in kinds plus whatever CRDs are stored, and the discovery documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BUILTIN", "CRD_RID", "Kind", "discovery_group_list", "discovery_resource_list", "kinds"]


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    crd: str | None = None  # name of the CRD that defines it

    @property
    def rid(self) -> str:
        return f"{self.group}/{self.version}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


BUILTIN = [
    Kind("", "v1", "namespaces", "Namespace", False),
    Kind("", "v1", "services", "Service", True),
    Kind("", "v1", "serviceaccounts", "ServiceAccount", True),
    Kind("", "v1", "configmaps", "ConfigMap", True),
    Kind("", "v1", "secrets", "Secret", True),
    Kind("", "v1", "pods", "Pod", True, ("status",)),
    Kind("", "v1", "events", "Event", True),
    Kind("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    Kind("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
    Kind("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False),
]
CRD_RID = "apiextensions.k8s.io/v1/customresourcedefinitions"


def kinds(crds: list[dict[str, Any]]) -> list[Kind]:
    """Built-ins plus one entry per served version of every stored CRD."""
    out = list(BUILTIN)
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            subs = tuple(sorted((version.get("subresources") or {}).keys()))
            out.append(
                Kind(
                    spec["group"],
                    version["name"],
                    spec["names"]["plural"],
                    spec["names"]["kind"],
                    spec["scope"] == "Namespaced",
                    subs,
                    crd["metadata"]["name"],
                )
            )
    return out


def discovery_group_list(all_kinds: list[Kind]) -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for k in all_kinds:
        if k.group:
            versions = groups.setdefault(k.group, [])
            if k.version not in versions:
                versions.append(k.version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": g,
                "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
            }
            for g, vs in groups.items()
        ],
    }


def discovery_resource_list(all_kinds: list[Kind], group: str, version: str) -> dict[str, Any] | None:
    matching = [k for k in all_kinds if k.group == group and k.version == version]
    if not matching:
        return None
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    resources: list[dict[str, Any]] = []
    for k in matching:
        resources.append(
            {
                "name": k.plural,
                "singularName": k.kind.lower(),
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": verbs,
            }
        )
        for sub in k.subresources:
            resources.append(
                {
                    "name": f"{k.plural}/{sub}",
                    "singularName": "",
                    "namespaced": k.namespaced,
                    "kind": "Scale" if sub == "scale" else k.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
