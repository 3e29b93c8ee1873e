"""The pods Grove makes of a PodCliqueSet: their names, labels, environment and startup dependencies.

Each fact follows the Grove operator at v0.1.0-alpha.11 (``../shared/notes/grove-runtime.md``):

* names (§1.1): standalone PodClique ``<pcs>-<i>-<clique>``; scaling-group member
  ``<pcs>-<i>-<pcsg>-<j>-<clique>`` (``operator/api/common/namegen.go :: GeneratePodCliqueName``); pod
  ``spec.hostname`` ``<pclq>-<k>`` and ``spec.subdomain`` ``<pcs>-<i>``, the headless Service
  (``pod/pod.go :: configurePodHostname``). The API server gives pods a random name suffix; here a pod
  is called by its hostname, which is unique too.
* gangs (§1.1, §5.1): scaling-group replicas ``j < minAvailable`` are in the base gang ``<pcs>-<i>``,
  the others in ``<pcsgFQN>-<j - minAvailable>``.
* labels (§3.1, ``pod/pod.go :: getLabels``) and the ``GROVE_*`` variables (§2.1,
  ``pod/pod.go :: addEnvironmentVariables``, ``podcliquescalinggroup/components/podclique/podclique.go ::
  addEnvironmentVariablesToPodContainerSpecs``) appended after the user's entries, scaling-group ones
  first, in alpha.11's order; the index variables are downward-API references to the pod's labels.
* startup (§4.1, ``podclique.go :: identifyFullyQualifiedStartupDependencyNames``): Explicit and
  InOrder parents become PodClique FQNs with the parent template's ``minAvailable`` Ready pods
  required (``initcontainer.go :: generateArgsForInitContainer``); AnyOrder has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CLUSTER_DOMAIN", "GrovePod", "StartupDependency", "grove_pods"]

CLUSTER_DOMAIN = "svc.cluster.local"
"""Grove hard-codes the cluster domain in the headless Service address (``namegen.go``)."""


@dataclass(frozen=True)
class StartupDependency:
    """Wait for ``ready`` Ready pods whose name starts with ``prefix`` (a parent PodClique FQN)."""

    prefix: str
    ready: int


@dataclass(frozen=True)
class GrovePod:
    """One pod as the Grove operator creates it."""

    pcs: str
    replica: int
    namespace: str
    clique: str
    pclq: str
    index: int
    gang: str
    template: Mapping[str, Any] = field(repr=False)
    pcsg: str | None = None
    pcsg_replica: int | None = None
    pcsg_template_pods: int | None = None
    base_gang: str | None = None
    starts_after: tuple[StartupDependency, ...] = ()

    @property
    def name(self) -> str:
        """The pod's name here: its hostname."""
        return self.hostname

    @property
    def hostname(self) -> str:
        return f"{self.pclq}-{self.index}"

    @property
    def subdomain(self) -> str:
        """The headless Service of the PodCliqueSet replica."""
        return f"{self.pcs}-{self.replica}"

    @property
    def headless_service(self) -> str:
        """``GROVE_HEADLESS_SERVICE``: ``<pcs>-<i>.<namespace>.svc.cluster.local``."""
        return f"{self.subdomain}.{self.namespace}.{CLUSTER_DOMAIN}"

    @property
    def fqdn(self) -> str:
        """The pod's DNS name under the headless Service."""
        return f"{self.hostname}.{self.headless_service}"

    @property
    def pod_spec(self) -> Mapping[str, Any]:
        return self.template["spec"]["podSpec"]  # type: ignore[no-any-return]

    @property
    def labels(self) -> dict[str, str]:
        """Grove's labels over the clique template's (Grove's keys win)."""
        labels = dict(self.template.get("labels") or {})
        labels.update({
            "app.kubernetes.io/managed-by": "grove-operator",
            "app.kubernetes.io/part-of": self.pcs,
            "app.kubernetes.io/name": self.pclq,
            "app.kubernetes.io/component": "pcs-podclique" if self.pcsg is None else "pcsg-podclique",
            "grove.io/podclique": self.pclq,
            "grove.io/podcliqueset-replica-index": str(self.replica),
            "grove.io/podgang": self.gang,
            "grove.io/podclique-pod-index": str(self.index),
        })  # fmt: skip
        if self.pcsg is not None:
            labels["grove.io/podcliquescalinggroup"] = self.pcsg
            labels["grove.io/podcliquescalinggroup-replica-index"] = str(self.pcsg_replica)
        if self.base_gang is not None:
            labels["grove.io/base-podgang"] = self.base_gang
        return labels

    def grove_env(self) -> list[dict[str, Any]]:
        """The entries Grove appends to every container's ``env`` (alpha.11 order)."""

        def label(key: str) -> dict[str, Any]:
            return {"fieldRef": {"fieldPath": f"metadata.labels['{key}']"}}

        env: list[dict[str, Any]] = []
        if self.pcsg is not None:
            env += [
                {"name": "GROVE_PCSG_NAME", "valueFrom": label("grove.io/podcliquescalinggroup")},
                {"name": "GROVE_PCSG_TEMPLATE_NUM_PODS", "value": str(self.pcsg_template_pods)},
                {
                    "name": "GROVE_PCSG_INDEX",
                    "valueFrom": label("grove.io/podcliquescalinggroup-replica-index"),
                },
            ]
        return env + [
            {"name": "GROVE_PCS_NAME", "value": self.pcs},
            {"name": "GROVE_PCS_INDEX", "value": str(self.replica)},
            {"name": "GROVE_PCLQ_NAME", "value": self.pclq},
            {"name": "GROVE_HEADLESS_SERVICE", "value": self.headless_service},
            {"name": "GROVE_PCLQ_POD_INDEX", "valueFrom": label("grove.io/podclique-pod-index")},
        ]


def grove_pods(pcs: Mapping[str, Any]) -> list[GrovePod]:
    """Every pod of the PodCliqueSet document ``pcs``, in template order per replica."""
    name = pcs["metadata"]["name"]
    namespace = pcs["metadata"].get("namespace") or "default"
    template = pcs["spec"]["template"]
    cliques = {c["name"]: c for c in template["cliques"]}
    order = [c["name"] for c in template["cliques"]]
    groups = {g["name"]: g for g in template.get("podCliqueScalingGroups") or ()}
    group_of = {clique: g for g in groups.values() for clique in g["cliqueNames"]}
    startup = template.get("cliqueStartupType") or "CliqueStartupTypeAnyOrder"

    def min_available(clique: str) -> int:
        spec = cliques[clique]["spec"]
        return int(spec.get("minAvailable", spec.get("replicas", 1)))

    def base_fqns(replica: int, clique: str) -> list[str]:
        group = group_of.get(clique)
        if group is None:
            return [f"{name}-{replica}-{clique}"]
        return [
            f"{name}-{replica}-{group['name']}-{r}-{clique}" for r in range(int(group.get("minAvailable", 1)))
        ]

    def parents(clique: str) -> list[str]:
        if startup == "CliqueStartupTypeExplicit":
            return list(cliques[clique]["spec"].get("startsAfter") or ())
        if startup == "CliqueStartupTypeInOrder":
            at = order.index(clique)
            return [order[at - 1]] if at else []
        return []

    pods: list[GrovePod] = []
    for replica in range(int(pcs["spec"].get("replicas", 1))):
        base = f"{name}-{replica}"
        for clique in order:
            group = group_of.get(clique)
            if group is None:
                deps = [
                    StartupDependency(f, min_available(p))
                    for p in parents(clique)
                    for f in base_fqns(replica, p)
                ]
                pods += _clique_pods(
                    cliques[clique], base, namespace, replica, f"{base}-{clique}", base, deps
                )
                continue
            pcsg = f"{base}-{group['name']}"
            group_min = int(group.get("minAvailable", 1))
            size = sum(int(cliques[c]["spec"].get("replicas", 1)) for c in group["cliqueNames"])
            for j in range(int(group.get("replicas", 1))):
                scaled = j >= group_min
                if scaled:
                    deps = [StartupDependency(f"{pcsg}-{j}-{p}", min_available(p))
                            for p in parents(clique) if p in group["cliqueNames"]]  # fmt: skip
                else:
                    deps = [
                        StartupDependency(f, min_available(p))
                        for p in parents(clique)
                        for f in base_fqns(replica, p)
                    ]
                pods += _clique_pods(
                    cliques[clique], base, namespace, replica, f"{pcsg}-{j}-{clique}",
                    f"{pcsg}-{j - group_min}" if scaled else base, deps,
                    pcsg=pcsg, pcsg_replica=j, pcsg_template_pods=size, base_gang=base if scaled else None,
                )  # fmt: skip
    return pods


def _clique_pods(
    clique: Mapping[str, Any], base: str, namespace: str, replica: int, pclq: str, gang: str,
    deps: list[StartupDependency], **group: Any,
) -> list[GrovePod]:  # fmt: skip
    pcs = base.rsplit("-", 1)[0]
    return [
        GrovePod(
            pcs=pcs,
            replica=replica,
            namespace=namespace,
            clique=clique["name"],
            pclq=pclq,
            index=k,
            gang=gang,
            template=clique,
            starts_after=tuple(deps),
            **group,
        )
        for k in range(int(clique["spec"].get("replicas", 1)))
    ]
