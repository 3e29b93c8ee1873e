"""The Grove a cluster runs, read live for ``deploy``: the operator's configuration and the bindings.

Best effort, as the deploying user may not be allowed to read them: the operator's ConfigMap (the Helm
chart labels it ``app.kubernetes.io/component=operator-configmap``) in the operator's namespace, and every
ClusterTopologyBinding. What cannot be read falls back to a default Helm install and no bindings —
what ``validate`` assumes without ``--grove-config``/``--topology``.
"""

from __future__ import annotations

from grove_pipelines.errors import GrovePipelinesError
from grove_pipelines.grove.cluster import GroveCluster
from grove_pipelines.grove.operator_config import OperatorConfig, operator_config_from
from grove_pipelines.grove.topology_bindings import TopologyBinding, bindings_from
from grove_pipelines.kube.client import KubeClient

__all__ = ["OPERATOR_NAMESPACES", "live_grove_cluster"]

OPERATOR_NAMESPACES = ("grove-system",)
_CONFIG_MAP = "app.kubernetes.io/component=operator-configmap,app.kubernetes.io/part-of=grove"


def _config(client: KubeClient, namespaces: tuple[str, ...]) -> OperatorConfig:
    for namespace in namespaces:
        try:
            items = client.list("v1", "ConfigMap", namespace, label_selector=_CONFIG_MAP).get("items") or []
        except GrovePipelinesError:
            continue
        for item in items:
            try:
                return operator_config_from(item, source=f"ConfigMap {namespace}/{item['metadata']['name']}")
            except GrovePipelinesError:
                continue
    return OperatorConfig()


def _bindings(client: KubeClient) -> dict[str, TopologyBinding]:
    try:
        items = client.list("grove.io/v1alpha1", "ClusterTopologyBinding").get("items") or []
        return bindings_from([{**item, "kind": "ClusterTopologyBinding"} for item in items])
    except GrovePipelinesError:
        return {}


def live_grove_cluster(
    client: KubeClient, *, namespaces: tuple[str, ...] = OPERATOR_NAMESPACES
) -> GroveCluster:
    """The operator configuration and bindings the cluster serves, or the defaults for what it does not."""
    return GroveCluster(config=_config(client, namespaces), bindings=_bindings(client))
