"""NetworkPolicies beside the PodCliqueSet: each pod accepts only the connections the pipeline makes.

One policy per stage (all its cliques and roles), selecting its pods by Grove's ``part-of`` label
and the compiler's stage label:

* the entry: its HTTP port from anywhere (it is what clients call, through the entry Service);
* a Python stage: its HTTP port from the pods of the stages that call it;
* an LLM stage: the vLLM port from the pods of its callers (their router sidecars), and every port
  between the LLM's own pods (the NIXL side channel and UCX transfers between prefill and decode, the
  torch.distributed rendezvous between a group's leader and workers), nothing from anyone else.

Kubelet probes come from the node, which network plugins admit regardless of policy, so the
router's port needs no rule: no other pod may reach it.
"""

from __future__ import annotations

from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove import containers as ctr
from grove_pipelines.grove.kube_objects import (
    LabelSelector,
    LabelSelectorRequirement,
    NetworkPolicy,
    NetworkPolicyIngressRule,
    NetworkPolicyPeer,
    NetworkPolicyPort,
    NetworkPolicySpec,
    ObjectMeta,
)
from grove_pipelines.grove.labels import PART_OF, STAGE_LABEL, stage_pods
from grove_pipelines.spec import LLMSpec

__all__ = ["build_network_policies"]


def _pods(pcs: str, stages: list[str]) -> LabelSelector:
    if len(stages) == 1:
        return LabelSelector(match_labels=stage_pods(pcs, stages[0]))
    return LabelSelector(
        match_labels={PART_OF: pcs},
        match_expressions=[LabelSelectorRequirement(key=STAGE_LABEL, operator="In", values=sorted(stages))],
    )


def build_network_policies(
    graph: PipelineGraph, *, pcs: str, namespace: str, labels: dict[str, str], entry_port: int
) -> list[NetworkPolicy]:
    """The entry's, every Python stage's and every LLM stage's ingress policy."""
    policies = []
    for stage in [ENTRY, *(s.name for s in graph.stages())]:
        callers = graph.callers(stage) if stage != ENTRY else []
        if stage == ENTRY:
            rules = [NetworkPolicyIngressRule(ports=[NetworkPolicyPort(port=entry_port, protocol="TCP")])]
        else:
            port = NetworkPolicyPort(port=ctr.WORKER_PORT, protocol="TCP")
            peers = [NetworkPolicyPeer(pod_selector=_pods(pcs, callers))] if callers else None
            # no callers: no rule at all (a rule without peers would admit everyone)
            rules = [NetworkPolicyIngressRule(from_=peers, ports=[port])] if peers else []
            if isinstance(graph.stage(stage), LLMSpec):
                rules.append(
                    NetworkPolicyIngressRule(from_=[NetworkPolicyPeer(pod_selector=_pods(pcs, [stage]))])
                )
        policies.append(
            NetworkPolicy(
                metadata=ObjectMeta(name=f"{pcs}-{stage}", namespace=namespace, labels=dict(labels)),
                spec=NetworkPolicySpec(
                    pod_selector=_pods(pcs, [stage]), policy_types=["Ingress"], ingress=rules
                ),
            )
        )
    return policies
