"""The names a pod resolves, written as a hosts file (mounted over the pod's ``/etc/hosts``, see ``netns``).

Cluster DNS gives a Grove pod three kinds of names, all listed here:

* its own hostname, as the kubelet writes it into the pod's ``/etc/hosts``;
* every pod of the PodCliqueSet replica under the headless Service:
  ``<hostname>.<pcs>-<i>.<ns>.svc.cluster.local`` (and the shorter forms the pod's DNS search path
  completes), before the pods are Ready since the compiled Service publishes not-ready addresses;
* every Service by ``<svc>``, ``<svc>.<ns>``, ``<svc>.<ns>.svc`` and the full name, at its ClusterIP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from grove_pipelines.local.identity import CLUSTER_DOMAIN, GrovePod

__all__ = ["hosts_file", "service_names"]


def service_names(service: str, namespace: str) -> list[str]:
    """The names a Service answers to inside its namespace."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.{CLUSTER_DOMAIN}",
    ]


def hosts_file(own: GrovePod, pods: Iterable[tuple[GrovePod, str]], services: Mapping[str, str]) -> str:
    """The hosts file of ``own``: ``pods`` are (pod, IP) pairs, ``services`` maps Service names to addresses."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    for pod, ip in pods:
        names = [
            pod.fqdn,
            f"{pod.hostname}.{pod.subdomain}.{pod.namespace}.svc",
            f"{pod.hostname}.{pod.subdomain}",
        ]
        if pod.name == own.name:
            names.append(pod.hostname)
        lines.append(f"{ip}\t{' '.join(names)}")
    for service, address in services.items():
        lines.append(f"{address}\t{' '.join(service_names(service, own.namespace))}")
    return "\n".join(lines) + "\n"
