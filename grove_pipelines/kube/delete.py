"""``delete``: remove a pipeline's PodCliqueSet and the objects deployed beside it.

Beside-objects are found by the labels deploy puts on everything it applies (part-of the set, managed
by grove-pipelines), so a Service or Role of another tool is never touched. Grove's own children
(PodCliques, PodGangs, pods) go with the set through owner references (foreground propagation).
"""

from __future__ import annotations

from grove_pipelines.kube.client import KubeClient
from grove_pipelines.kube.errors import UnmanagedPipelineError
from grove_pipelines.kube.manifests import MANAGED_BY, PART_OF, PCS_API_VERSION, is_managed
from grove_pipelines.kube.preflight import Report
from grove_pipelines.kube.wait import wait_gone

__all__ = ["BESIDE_KINDS", "delete"]

BESIDE_KINDS = [
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("v1", "ServiceAccount"),
]


def delete(
    client: KubeClient,
    *,
    name: str,
    namespace: str,
    wait: bool = False,
    timeout: float = 300.0,
    report: Report = lambda line: None,
) -> list[str] | None:
    """Delete PodCliqueSet ``name`` and its beside-objects; one ``kind/name deleted`` line per object.

    Returns None when there was nothing of that name to delete. With ``wait``, returns only once the
    set and its pods are gone.
    """
    deleted = []
    live = client.get(PCS_API_VERSION, "PodCliqueSet", name, namespace)
    if live is not None and not is_managed(live):
        raise UnmanagedPipelineError(name, namespace, "delete")
    if client.delete(PCS_API_VERSION, "PodCliqueSet", name, namespace, propagation="Foreground") is not None:
        deleted.append(f"podcliqueset/{name} deleted")
    selector = f"{PART_OF}={name},{MANAGED_BY}=grove-pipelines"
    for api_version, kind in BESIDE_KINDS:
        for item in client.list(api_version, kind, namespace, label_selector=selector)["items"]:
            item_name = item["metadata"]["name"]
            if client.delete(api_version, kind, item_name, namespace, propagation="Background") is not None:
                deleted.append(f"{kind.lower()}/{item_name} deleted")
    if not deleted:
        return None
    if wait:
        wait_gone(client, name=name, namespace=namespace, timeout=timeout, report=report)
    return deleted
