"""Finding the cluster: kubeconfig (``--kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``) or in-cluster.

Read at call time, not import time (the client library reads ``$KUBECONFIG`` once, when imported), so a
changed environment or a test's generated kubeconfig is honoured. Nothing here talks to the cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from urllib3.util.retry import Retry

from grove_pipelines.kube.client import KubeClient
from grove_pipelines.kube.errors import KubeConfigError, translate

__all__ = ["connect", "kubeconfig_paths"]

# urllib3 retries refused connections and dropped keep-alive connections of idempotent requests, never an
# answer: retries on 429/5xx are KubeClient.request's (logged, honouring Retry-After).
_RETRIES = Retry(
    total=None, connect=2, read=2, redirect=3, status=0, other=0, respect_retry_after_header=False
)
_IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def kubeconfig_paths(kubeconfig: str | None = None) -> list[Path]:
    """The kubeconfig files to merge, in order: the explicit one, else ``$KUBECONFIG``, else the default."""
    spec = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [Path(p).expanduser() for p in spec.split(os.pathsep) if p]


def _in_cluster(context: str | None) -> KubeClient:
    configuration = k8s.Configuration()
    with translate("load the in-cluster service account configuration"):
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    namespace = "default"
    if _IN_CLUSTER_NAMESPACE.exists():
        namespace = _IN_CLUSTER_NAMESPACE.read_text().strip() or namespace
    configuration.retries = _RETRIES
    return KubeClient(k8s.ApiClient(configuration), where="in-cluster service account", namespace=namespace)


def connect(*, kubeconfig: str | None = None, context: str | None = None) -> KubeClient:
    """A client for the cluster the kubeconfig (and ``context``) names; no request is made yet.

    Raises ``KubeConfigError`` with one line naming the file and context when there is no usable
    configuration. Inside a pod with no kubeconfig, the pod's service account is used.
    """
    paths = kubeconfig_paths(kubeconfig)
    existing = [p for p in paths if p.is_file()]
    shown = os.pathsep.join(str(p) for p in paths)
    if not existing:
        if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ and context is None:
            return _in_cluster(context)
        raise KubeConfigError(
            f"no Kubernetes cluster configured: kubeconfig {shown} does not exist; "
            "point KUBECONFIG or --kubeconfig at one (see deploy/README.md)"
        )
    config_file = os.pathsep.join(str(p) for p in existing)
    with translate(f"load kubeconfig {shown}"):
        contexts, current = k8s_config.list_kube_config_contexts(config_file=config_file)  # type: ignore[no-untyped-call]
        names = [c["name"] for c in contexts or []]
        if context is not None and context not in names:
            raise KubeConfigError(
                f"kubeconfig {shown} has no context {context!r} (it has: {', '.join(names) or 'none'})"
            )
        chosen = next((c for c in contexts or [] if c["name"] == context), current) or {}
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=config_file, context=context, client_configuration=configuration, persist_config=False
        )
    configuration.retries = _RETRIES
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    where = f"kubeconfig {shown}, context {chosen.get('name', '?')}"
    return KubeClient(k8s.ApiClient(configuration), where=where, namespace=namespace)
