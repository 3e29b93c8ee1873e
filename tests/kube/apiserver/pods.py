"""The pod side of the Grove double: pods per PodClique, each moved one step a pass (or held stuck)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from tests.kube.apiserver.store import Store, now

__all__ = ["PodSim"]

PCS = "grove.io/v1alpha1/podcliquesets"
PCLQ = "grove.io/v1alpha1/podcliques"
PCSG = "grove.io/v1alpha1/podcliquescalinggroups"
PG = "scheduler.grove.io/v1alpha1/podgangs"
POD = "/v1/pods"
EVENT = "/v1/events"
GATE = "grove.io/podgang-pending-creation"
FINALIZER = "grove.io/podcliqueset.grove.io"
TEMPLATE = "double.test/template-clique"  # the double's own bookkeeping: which template a PodClique came from
STUCK = "double.test/stuck"  # ... and which pods stay where they are


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _cond(kind: str, ok: bool, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": now(),
    }


class PodSim:
    """Mixin of ``GroveSim``: keeps each PodClique's pods at ``spec.replicas`` and moves them along."""

    store: Store
    held: dict[str, tuple[str, str]]
    _names: itertools.count[int]

    # -- pods --------------------------------------------------------------------------------------
    def _pod_ip(self) -> str:
        """A cluster-looking address no socket listens on (the proxy maps it: ``PodProxy.attach``)."""
        n = next(self._names)
        return f"10.244.{n // 250 % 250}.{n % 250 + 1}"

    def _pods(self, pclq: dict[str, Any]) -> bool:
        meta = pclq["metadata"]
        ns, fqn = meta["namespace"], meta["name"]
        pods = [
            p for p in self.store.items(POD, ns) if p["metadata"]["labels"].get("grove.io/podclique") == fqn
        ]
        changed = False
        want = pclq["spec"]["replicas"]
        for pod in pods[want:]:
            self.store.remove((POD, ns, pod["metadata"]["name"]))
            changed = True
        pods = pods[:want]
        for index in range(len(pods), want):
            pods.append(self._new_pod(pclq, index))
            changed = True
        held = self.held.get((meta.get("annotations") or {}).get(TEMPLATE, ""))
        for pod in pods:
            changed |= self._step(pod, held)
        return changed

    def _new_pod(self, pclq: dict[str, Any], index: int) -> dict[str, Any]:
        meta = pclq["metadata"]
        labels = {k: v for k, v in meta["labels"].items()}
        labels.update({"grove.io/podclique": meta["name"], "grove.io/podclique-pod-index": str(index)})
        spec = copy.deepcopy(pclq["spec"]["podSpec"])
        spec["schedulingGates"] = [{"name": GATE}]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{next(self._names):05d}",
                "namespace": meta["namespace"],
                "labels": labels,
                "ownerReferences": [_owner(pclq)],
            },
            "spec": spec,
            "status": {
                "phase": "Pending",
                "conditions": [
                    _cond(
                        "PodScheduled",
                        False,
                        "SchedulingGated",
                        "Scheduling is blocked due to non-empty scheduling gates",
                    )
                ],
            },
        }
        return self.store.put(POD, pod)

    def _event(self, pod: dict[str, Any], reason: str, message: str) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.store.put(
            EVENT,
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{name}.{next(self._names):x}", "namespace": ns},
                "involvedObject": {"kind": "Pod", "name": name, "namespace": ns},
                "reason": reason,
                "message": message,
                "type": "Warning",
                "count": 1,
                "lastTimestamp": now(),
            },
        )

    def _step(self, pod: dict[str, Any], held: tuple[str, str] | None) -> bool:
        """Move one pod one step: gated -> scheduled -> ready (or stuck the way ``held`` says)."""
        how, message = held or ("", "")
        spec, status = pod["spec"], pod["status"]
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        if ready or STUCK in (pod["metadata"].get("annotations") or {}):
            return False
        image = spec["containers"][0].get("image", "")
        if spec.get("schedulingGates"):
            if how == "gated":
                return False
            spec.pop("schedulingGates")
            if how == "unschedulable":
                msg = message or "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
                status["conditions"] = [_cond("PodScheduled", False, "Unschedulable", msg)]
                pod["metadata"].setdefault("annotations", {})[STUCK] = how
                self._event(pod, "FailedScheduling", msg)
            else:
                status["conditions"] = [_cond("PodScheduled", True, "Scheduled")]
                spec["nodeName"] = "double-node-1"
        elif how == "image":
            msg = message or f'Back-off pulling image "{image}"'
            status["containerStatuses"] = [
                {
                    "name": spec["containers"][0]["name"],
                    "ready": False,
                    "restartCount": 0,
                    "image": image,
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": msg}},
                }
            ]
            pod["metadata"].setdefault("annotations", {})[STUCK] = how
            self._event(pod, "Failed", f'Failed to pull image "{image}": not found')
        else:
            status["phase"] = "Running"
            status["podIP"] = self._pod_ip()
            status["conditions"] = [
                _cond("PodScheduled", True, "Scheduled"),
                _cond("Ready", True, "PodReady"),
            ]
            status["containerStatuses"] = [
                {
                    "name": c["name"],
                    "ready": True,
                    "restartCount": 0,
                    "image": c.get("image"),
                    "state": {"running": {"startedAt": now()}},
                }
                for c in spec["containers"]
            ]
        self.store.put(POD, pod)
        return True
