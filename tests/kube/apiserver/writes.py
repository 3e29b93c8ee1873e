"""Writes that merge into a live object: server-side apply, merge patches, ``/scale`` (mixin of ``Api``)."""

from __future__ import annotations

import copy
from typing import Any

from tests.kube.apiserver import ssa
from tests.kube.apiserver.resources import Kind

__all__ = ["ApiStatus", "WritesMixin"]


class ApiStatus(Exception):
    """An error answer: becomes a ``kind: Status`` body."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def body(self) -> dict[str, Any]:
        out = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


class WritesMixin:
    """Apply and patch; the rest of the verbs and the shared helpers live on ``Api``."""

    def _apply(
        self, kind: Kind, ns: str | None, name: str, applied: dict[str, Any], query: dict[str, str], dry: bool
    ) -> dict[str, Any]:
        manager = query.get("fieldManager")
        if not manager:
            raise ApiStatus(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch",
            )
        meta = applied.setdefault("metadata", {})
        if meta.get("name") not in (None, name):
            raise ApiStatus(400, "BadRequest", "the name of the object does not match the name on the URL")
        meta["name"] = name
        if kind.namespaced:
            meta["namespace"] = ns
        self._check_namespace(kind, ns)
        key = (kind.rid, ns or "", name)
        live = self.store.get(key)
        strict = query.get("fieldValidation") == "Strict"
        schema = self._schema(kind)
        if live is None:
            obj = copy.deepcopy(applied)
            self._admit(kind, obj, None, strict)
            self._managed(obj, manager, "Apply", ssa.fields_of(applied, schema))
            return self._store(kind, obj, None, dry)
        owners = self.owners(live)
        mine_before = {
            p
            for m in live["metadata"].get("managedFields") or []
            if m["manager"] == manager and m["operation"] == "Apply"
            for p in ssa.from_fieldsv1(m.get("fieldsV1") or {})
        }
        others = {m: paths for m, paths in owners.items() if m != manager}
        found = ssa.conflicts(live, applied, others, schema)
        if found and query.get("force") != "true":
            causes = [
                {
                    "type": "FieldManagerConflict",
                    "message": f'conflict with "{m}" using {kind.api_version}',
                    "field": ssa.pretty(p),
                }
                for m, p in found
            ]
            n = len(causes)
            listed = "\n".join(f"- {c['message'][len('conflict with ') :]}: {c['field']}" for c in causes)
            raise ApiStatus(
                409,
                "Conflict",
                f"Apply failed with {n} conflict{'s' if n > 1 else ''}: "
                f"{causes[0]['message']}: {causes[0]['field']}"
                if n == 1
                else f"Apply failed with {n} conflicts: conflicts with\n{listed}",
                {"causes": causes},
            )
        new_fields = ssa.fields_of(applied, schema)
        still_owned = set().union(*others.values()) if others else set()
        obj = ssa.merge_apply(live, applied, (mine_before - new_fields) - still_owned, schema)
        taken = {p for _, p in found}
        for entry in obj["metadata"].get("managedFields") or []:
            if entry["manager"] != manager and taken:
                kept = ssa.from_fieldsv1(entry.get("fieldsV1") or {}) - taken
                entry["fieldsV1"] = ssa.to_fieldsv1(kept)
        self._admit(kind, obj, live, strict)
        self._managed(obj, manager, "Apply", new_fields)
        return self._store(kind, obj, live, dry)

    def _merge_patch(
        self,
        kind: Kind,
        key: tuple[str, str, str],
        patch: dict[str, Any],
        sub: str | None,
        query: dict[str, str],
        dry: bool,
    ) -> dict[str, Any]:
        live = self._must(kind, key)
        manager = query.get("fieldManager", "unknown")
        if sub == "scale":
            replicas = (patch.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiStatus(422, "Invalid", f'Scale "{key[2]}" is invalid: spec.replicas: Invalid value')
            obj = copy.deepcopy(live)
            obj.setdefault("spec", {})["replicas"] = replicas
            self._managed(obj, manager, "Update", {("f:spec", "f:replicas")}, "scale")
            return self._scale_view(kind, self._store(kind, obj, live, dry))
        merged = _json_merge(live, patch)
        if sub == "status":  # the status endpoint changes status only
            obj = copy.deepcopy(live)
            obj["status"] = merged.get("status")
            return self._store(kind, obj, live, dry)
        obj = merged
        if "status" in kind.subresources:  # ...and the main endpoint everything but status
            obj["status"] = copy.deepcopy(live.get("status"))
            if obj["status"] is None:
                obj.pop("status")
        self._admit(kind, obj, live, query.get("fieldValidation") == "Strict")
        changed = ssa.fields_of({k: v for k, v in patch.items() if k != "status"}, self._schema(kind))
        self._take(obj, manager, changed)
        return self._store(kind, obj, live, dry)

    def _take(self, obj: dict[str, Any], manager: str, changed: set[ssa.Path]) -> None:
        """An update adds what it changed to the manager's earlier fields and takes them from the others."""
        earlier = {
            p
            for m in obj["metadata"].get("managedFields") or []
            if m["manager"] == manager and m["operation"] == "Update" and not m.get("subresource")
            for p in ssa.from_fieldsv1(m.get("fieldsV1") or {})
        }
        for entry in obj["metadata"].get("managedFields") or []:
            if entry["manager"] != manager:
                entry["fieldsV1"] = ssa.to_fieldsv1(ssa.from_fieldsv1(entry.get("fieldsV1") or {}) - changed)
        self._managed(obj, manager, "Update", earlier | changed)

    @staticmethod
    def _scale_view(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        status = obj.get("status") or {}
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {
                "replicas": status.get("replicas", 0),
                "selector": status.get("hpaPodSelector") or status.get("selector") or "",
            },
        }


def _json_merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _json_merge(out.get(k), v)
    return out
