"""The pipeline's ``<pcs>-auth`` Secret: created by deploy with random values when it is missing.

The compiled pods reference it (``grove_pipelines.spec.server_auth``) but the manifest never carries
it: a random key in a golden file, or an apply that resets the keys on every deploy, would be worse.
A Secret the user made first is kept as it is; only keys the pods reference and it lacks are added.
"""

from __future__ import annotations

import base64
from typing import Any

from grove_pipelines.kube.client import KubeClient
from grove_pipelines.kube.manifests import MANAGED_BY, PART_OF
from grove_pipelines.spec.server_auth import auth_secret_name, new_secret_value, secret_key_refs

__all__ = ["ensure_auth_secret", "referenced_keys"]


def referenced_keys(pcs: dict[str, Any]) -> list[str]:
    """The keys of ``<pcs>-auth`` the PodCliqueSet's containers read, sorted."""
    name = auth_secret_name(pcs["metadata"]["name"])
    return sorted({key for secret, key in secret_key_refs(pcs) if secret == name})


def _present(live: dict[str, Any]) -> set[str]:
    return set(live.get("data") or {}) | set(live.get("stringData") or {})


def ensure_auth_secret(
    client: KubeClient, pcs: dict[str, Any], *, dry_run: bool = False
) -> tuple[str, str] | None:
    """Create ``<pcs>-auth`` (or add the keys it lacks) with random tokens; ``(name, action)`` or None."""
    keys = referenced_keys(pcs)
    if not keys:
        return None
    pcs_name, namespace = pcs["metadata"]["name"], pcs["metadata"]["namespace"]
    name = auth_secret_name(pcs_name)
    live = client.get("v1", "Secret", name, namespace)
    missing = [key for key in keys if live is None or key not in _present(live)]
    if not missing:
        return name, "unchanged"
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if live is None:
        meta["labels"] = {PART_OF: pcs_name, MANAGED_BY: "grove-pipelines"}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "data": {key: base64.b64encode(new_secret_value().encode()).decode() for key in missing},
    }
    client.apply(secret, dry_run=dry_run)
    return name, "created" if live is None else "configured"
