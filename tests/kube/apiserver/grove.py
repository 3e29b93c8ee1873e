"""Grove's part, played simply: PodCliques, scaling groups, PodGangs and pods that come up on cue.

A double of the operator, not the operator: one reconcile pass creates the children of every
PodCliqueSet (names per grove-api.md §1.6), keeps pod counts at each PodClique's ``spec.replicas``
(template replicas are initial only, §5.3: only ``/scale`` changes them later), moves each pod one
step (gated -> scheduled -> ready), and rolls status up to PodClique, group, PodGang and set. ``hold``
keeps a clique's pods stuck the way real clusters do (gate still on, unschedulable, image pull error).
"""

from __future__ import annotations

import copy
import itertools
import threading
from typing import Any

from tests.kube.apiserver.pods import (
    FINALIZER,
    PCLQ,
    PCS,
    PCSG,
    PG,
    POD,
    TEMPLATE,
    PodSim,
    _cond,
    _owner,
)
from tests.kube.apiserver.store import Store

__all__ = ["GroveSim"]


class GroveSim(PodSim):
    """Reconciles Grove objects in the store; ``start`` runs it in the background after every change."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.held: dict[str, tuple[str, str]] = {}
        self._names = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, clique: str, how: str = "image", message: str = "") -> None:
        """Keep the pods of template clique ``clique`` from becoming ready: ``gated``, ``unschedulable``, ``image``."""
        self.held[clique] = (how, message)

    def release(self, clique: str) -> None:
        self.held.pop(clique, None)

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="grove-sim", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.store.cond:
            self.store.cond.notify_all()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            seen = self.store.current_rv
            changed = self.reconcile()
            with self.store.cond:
                if not changed and self.store.current_rv == seen and not self._stop.is_set():
                    self.store.cond.wait(0.5)
            if changed:
                self._stop.wait(0.01)

    # -- reconcile -----------------------------------------------------------------------------------
    def _put(self, rid: str, obj: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        old = self.store.get((rid, meta.get("namespace", ""), meta["name"]))
        if old is not None:
            comparable = {k: v for k, v in old.items()}
            for k in ("resourceVersion", "uid", "creationTimestamp", "generation"):
                meta.setdefault(k, old["metadata"].get(k))
            if comparable == obj:
                return False
        self.store.put(rid, obj)
        return True

    def reconcile(self) -> bool:
        """One pass over every PodCliqueSet; True when anything changed."""
        with self.store.cond:
            changed = self.store.collect_garbage()  # the cluster's garbage collector runs beside Grove
            for pcs in self.store.items(PCS, None):
                changed |= self._reconcile_pcs(pcs)
            for pclq in self.store.items(PCLQ, None):
                changed |= self._pods(pclq)
            for pcs in self.store.items(PCS, None):
                changed |= self._status(pcs)
            return changed

    def _reconcile_pcs(self, pcs: dict[str, Any]) -> bool:
        meta = pcs["metadata"]
        key = (PCS, meta["namespace"], meta["name"])
        if meta.get("deletionTimestamp"):  # drop our finalizer; children go by the garbage collector
            if FINALIZER not in (meta.get("finalizers") or []):
                return False
            meta["finalizers"] = [f for f in meta["finalizers"] if f != FINALIZER]
            if meta["finalizers"]:
                self.store.put(PCS, pcs)
            else:
                self.store.remove(key)
            return True
        changed = False
        if FINALIZER not in (meta.get("finalizers") or []):
            meta.setdefault("finalizers", []).append(FINALIZER)
            pcs = self.store.put(PCS, pcs)
            changed = True
        template = pcs["spec"]["template"]
        cliques = {c["name"]: c for c in template.get("cliques") or []}
        grouped = {
            n for g in template.get("podCliqueScalingGroups") or [] for n in g.get("cliqueNames") or []
        }
        for i in range(pcs["spec"].get("replicas", 0)):
            base = f"{meta['name']}-{i}"
            gang_groups = []
            for name, clique in cliques.items():
                if name not in grouped:
                    changed |= self._ensure_pclq(pcs, pcs, f"{base}-{name}", clique, i, base, None)
                    gang_groups.append((f"{base}-{name}", clique))
            for group in template.get("podCliqueScalingGroups") or []:
                fqn = f"{base}-{group['name']}"
                pcsg = self.store.get((PCSG, meta["namespace"], fqn))
                if pcsg is None:
                    spec = {
                        "replicas": group.get("replicas", 1),
                        "minAvailable": group.get("minAvailable", 1),
                        "cliqueNames": group["cliqueNames"],
                    }
                    pcsg = self.store.put(
                        PCSG,
                        {
                            "apiVersion": "grove.io/v1alpha1",
                            "kind": "PodCliqueScalingGroup",
                            "metadata": self._meta(pcs, fqn, i, pcs),
                            "spec": spec,
                        },
                    )
                    changed = True
                for j in range(pcsg["spec"]["replicas"]):
                    for name in group["cliqueNames"]:
                        changed |= self._ensure_pclq(
                            pcs, pcsg, f"{fqn}-{j}-{name}", cliques[name], i, base, (fqn, j)
                        )
                        if j < pcsg["spec"]["minAvailable"]:
                            gang_groups.append((f"{fqn}-{j}-{name}", cliques[name]))
            if self.store.get((PG, meta["namespace"], base)) is None:
                groups = [
                    {
                        "name": n,
                        "minReplicas": c["spec"].get("minAvailable", c["spec"]["replicas"]),
                        "podReferences": [],
                    }
                    for n, c in gang_groups
                ]
                self.store.put(
                    PG,
                    {
                        "apiVersion": "scheduler.grove.io/v1alpha1",
                        "kind": "PodGang",
                        "metadata": self._meta(pcs, base, i, pcs),
                        "spec": {"podgroups": groups},
                        "status": {"phase": "Pending"},
                    },
                )
                changed = True
        return changed

    @staticmethod
    def _meta(pcs: dict[str, Any], name: str, index: int, owner: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": pcs["metadata"]["namespace"],
            "ownerReferences": [_owner(owner)],
            "labels": {
                "app.kubernetes.io/managed-by": "grove-operator",
                "app.kubernetes.io/part-of": pcs["metadata"]["name"],
                "grove.io/podcliqueset-replica-index": str(index),
            },
        }

    def _ensure_pclq(
        self,
        pcs: dict[str, Any],
        owner: dict[str, Any],
        fqn: str,
        clique: dict[str, Any],
        index: int,
        gang: str,
        group: tuple[str, int] | None,
    ) -> bool:
        if self.store.get((PCLQ, pcs["metadata"]["namespace"], fqn)) is not None:
            return False  # template changes never reach an existing PodClique's replicas
        meta = self._meta(pcs, fqn, index, owner)
        # the template's labels first: Grove's keys win over same-named user keys (grove-runtime.md §3.2)
        meta["labels"] = {
            **(clique.get("labels") or {}),
            **meta["labels"],
            "app.kubernetes.io/component": "pcsg-podclique" if group else "pcs-podclique",
            "grove.io/podgang": gang,
        }
        if group:
            meta["labels"].update(
                {
                    "grove.io/podcliquescalinggroup": group[0],
                    "grove.io/podcliquescalinggroup-replica-index": str(group[1]),
                }
            )
        meta["annotations"] = {TEMPLATE: clique["name"]}
        spec = copy.deepcopy(clique["spec"])
        spec.setdefault("minAvailable", spec["replicas"])
        self.store.put(
            PCLQ,
            {
                "apiVersion": "grove.io/v1alpha1",
                "kind": "PodClique",
                "metadata": meta,
                "spec": spec,
                "status": {"hpaPodSelector": f"grove.io/podclique={fqn}"},
            },
        )
        return True

    # -- status ------------------------------------------------------------------------------------
    def _status(self, pcs: dict[str, Any]) -> bool:
        ns, name = pcs["metadata"]["namespace"], pcs["metadata"]["name"]
        pods = [
            p
            for p in self.store.items(POD, ns)
            if p["metadata"]["labels"].get("app.kubernetes.io/part-of") == name
        ]
        changed = False
        counts: dict[str, tuple[int, int]] = {}
        for pclq in self.store.items(PCLQ, ns):
            if pclq["metadata"]["labels"].get("app.kubernetes.io/part-of") != name:
                continue
            mine = [
                p
                for p in pods
                if p["metadata"]["labels"].get("grove.io/podclique") == pclq["metadata"]["name"]
            ]
            ready = sum(
                any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
                for p in mine
            )
            gated = sum(bool(p["spec"].get("schedulingGates")) for p in mine)
            scheduled = sum(bool(p["spec"].get("nodeName")) for p in mine)
            minimum = pclq["spec"]["minAvailable"]
            counts[pclq["metadata"]["name"]] = (scheduled, minimum)
            status = dict(pclq.get("status") or {})
            status.update(
                {
                    "replicas": len(mine),
                    "readyReplicas": ready,
                    "scheduledReplicas": scheduled,
                    "scheduleGatedReplicas": gated,
                    "updatedReplicas": len(mine),
                }
            )
            status["conditions"] = _keep_times(
                status.get("conditions"),
                [
                    _cond(
                        "MinAvailableBreached",
                        ready < minimum,
                        "InsufficientReadyPods" if ready < minimum else "SufficientReadyPods",
                        f"{ready} ready, minAvailable {minimum}",
                    ),
                    _cond(
                        "PodCliqueScheduled",
                        scheduled >= minimum,
                        "Scheduled" if scheduled >= minimum else "Pending",
                    ),
                ],
            )
            pclq["status"] = status
            changed |= self._put(PCLQ, pclq)
        gangs = []
        for gang in self.store.items(PG, ns):
            if gang["metadata"]["labels"].get("app.kubernetes.io/part-of") != name:
                continue
            running = all(
                counts.get(g["name"], (0, 1))[0] >= g["minReplicas"] for g in gang["spec"]["podgroups"]
            )
            gang["status"] = {"phase": "Running" if running else "Pending"}
            changed |= self._put(PG, gang)
            gangs.append({"name": gang["metadata"]["name"], "phase": gang["status"]["phase"]})
        return changed | self._pcs_status(pcs, gangs)

    def _pcs_status(self, pcs: dict[str, Any], gangs: list[dict[str, Any]]) -> bool:
        ns, name = pcs["metadata"]["namespace"], pcs["metadata"]["name"]
        changed = False
        for pcsg in self.store.items(PCSG, ns):
            if pcsg["metadata"]["labels"].get("app.kubernetes.io/part-of") != name:
                continue
            fqn = pcsg["metadata"]["name"]
            available = 0
            for j in range(pcsg["spec"]["replicas"]):
                members = [self.store.get((PCLQ, ns, f"{fqn}-{j}-{c}")) for c in pcsg["spec"]["cliqueNames"]]
                available += all(
                    m and (m.get("status") or {}).get("readyReplicas", 0) >= m["spec"]["minAvailable"]
                    for m in members
                )
            pcsg["status"] = {
                "replicas": pcsg["spec"]["replicas"],
                "availableReplicas": available,
                "selector": f"grove.io/podcliquescalinggroup={fqn}",
            }
            changed |= self._put(PCSG, pcsg)
        running = sum(g["phase"] == "Running" for g in gangs)
        status = {
            "replicas": pcs["spec"].get("replicas", 0),
            "availableReplicas": running,
            "updatedReplicas": running,
            "podGangStatuses": gangs,
            "observedGeneration": pcs["metadata"].get("generation", 1),
        }
        if (pcs.get("status") or {}) == status:
            return changed
        pcs["status"] = status
        return self._put(PCS, pcs) or changed


def _keep_times(old: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep lastTransitionTime when a condition did not change, so a quiet object stays quiet."""
    before = {c["type"]: c for c in old or []}
    out = []
    for cond in new:
        prev = before.get(cond["type"])
        if prev and {k: v for k, v in prev.items() if k != "lastTransitionTime"} == {
            k: v for k, v in cond.items() if k != "lastTransitionTime"
        }:
            cond = prev
        out.append(cond)
    return out
