"""The REST semantics of the double, apart from HTTP: routing, authz, CRUD, apply, scale, dry run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.kube.apiserver import schema, ssa
from tests.kube.apiserver.builtins import validate_builtin
from tests.kube.apiserver.resources import (
    CRD_RID,
    Kind,
    discovery_group_list,
    discovery_resource_list,
    kinds,
)
from tests.kube.apiserver.selectors import match_fields, match_labels
from tests.kube.apiserver.store import Store, now
from tests.kube.apiserver.webhook import grove_admit
from tests.kube.apiserver.writes import ApiStatus, WritesMixin

__all__ = ["Api", "ApiStatus", "Watch"]


@dataclass
class Watch:
    kind: Kind
    namespace: str | None
    label_selector: str | None
    field_selector: str | None
    rv: int
    timeout: float
    initial: bool = False  # no resourceVersion (or "0"): synthetic ADDED events for what exists first
    bookmarks: bool = False  # allowWatchBookmarks=true
    expired: bool = False  # the version asked for was compacted away: one ERROR event, 410


@dataclass
class Api(WritesMixin):
    store: Store
    tokens: dict[str, str] = field(default_factory=dict)  # bearer token -> user name; empty: no auth
    forbidden: list[tuple[str, str]] = field(default_factory=list)  # (verb, plural) pairs RBAC refuses
    calls: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    expire_watches: int = 0  # the next N watches find their version compacted (410), as after etcd compaction

    # -- routing -------------------------------------------------------------------------------------
    def kinds(self) -> list[Kind]:
        crds = [
            o
            for o in self.store.items(CRD_RID, None, copied=False)
            if not o["metadata"].get("deletionTimestamp")
        ]
        return kinds(crds)

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Any:
        self.calls.append((method, path, query))
        user = self._authenticate(headers)
        parts = [p for p in path.split("/") if p]
        if path == "/version":
            return {"major": "1", "minor": "31", "gitVersion": "v1.31.0-double", "platform": "linux/amd64"}
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"]}
        if parts == ["apis"]:
            return discovery_group_list(self.kinds())
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            found = discovery_resource_list(self.kinds(), group, version)
            if found is None:
                raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
            return found
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = rest[0], rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None
        kind = next(
            (k for k in self.kinds() if (k.group, k.version, k.plural) == (group, version, plural)), None
        )
        if kind is None or (sub and sub not in kind.subresources):
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
        verb = self._verb(method, name, query)
        self._authorize(user, verb, kind, namespace, name, sub)
        return self._dispatch(method, verb, kind, namespace, name, sub, query, headers, body)

    @staticmethod
    def _verb(method: str, name: str | None, query: dict[str, str]) -> str:
        if method == "GET":
            return "get" if name else ("watch" if query.get("watch") in ("true", "1") else "list")
        return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]

    def _authenticate(self, headers: dict[str, str]) -> str:
        if not self.tokens:
            return "admin"
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise ApiStatus(401, "Unauthorized", "Unauthorized")
        return self.tokens[token]

    def _authorize(
        self,
        user: str,
        verb: str,
        kind: Kind,
        namespace: str | None,
        name: str | None,
        sub: str | None = None,
    ) -> None:
        """RBAC names a subresource as ``plural/sub`` (``podcliques/scale``): a rule on the plural alone does
        not cover it, nor the other way round."""
        resource = f"{kind.plural}/{sub}" if sub else kind.plural
        if (verb, resource) in self.forbidden or ("*", resource) in self.forbidden:
            res = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
            what = f'{res} "{name}"' if name else res
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            raise ApiStatus(
                403,
                "Forbidden",
                f'{what} is forbidden: User "{user}" cannot {verb} resource '
                f'"{resource}" in API group "{kind.group}"{where}',
                {"name": name or "", "group": kind.group, "kind": kind.plural},
            )

    # -- verbs ---------------------------------------------------------------------------------------
    def _dispatch(
        self,
        method: str,
        verb: str,
        kind: Kind,
        ns: str | None,
        name: str | None,
        sub: str | None,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> Any:
        ns = ns if kind.namespaced else None
        dry = query.get("dryRun") == "All"
        if verb == "list":
            return self._list(kind, ns, query)
        if verb == "watch":
            asked = query.get("resourceVersion") or "0"
            try:
                rv = int(asked)
            except ValueError as exc:
                raise ApiStatus(400, "BadRequest", f'invalid resource version "{asked}"') from exc
            expired = rv != 0 and (rv < self.store.compacted_rv or self.expire_watches > 0)
            self.expire_watches = max(0, self.expire_watches - 1)
            return Watch(
                kind,
                ns,
                query.get("labelSelector"),
                query.get("fieldSelector"),
                self.store.current_rv if rv == 0 else rv,
                float(query.get("timeoutSeconds") or 60),
                initial=rv == 0,
                bookmarks=query.get("allowWatchBookmarks") == "true",
                expired=expired,
            )
        if verb == "create":
            return self._create(kind, ns, self._parse(body), query, dry)
        assert name is not None
        key = (kind.rid, ns or "", name)
        if verb == "get":
            obj = self._must(kind, key)
            return self._scale_view(kind, obj) if sub == "scale" else obj
        if verb == "delete":
            options = self._parse(body) if body else {}
            policy = options.get("propagationPolicy") or query.get("propagationPolicy") or "Background"
            if policy not in ("Foreground", "Background", "Orphan"):
                raise ApiStatus(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
                                f'Unsupported value: "{policy}"')  # fmt: skip
            return self._delete(kind, key, dry, policy)
        content = headers.get("content-type", "").split(";")[0]
        patch = self._parse(body)
        if content == "application/apply-patch+yaml":
            return self._apply(kind, ns, name, patch, query, dry)
        if content not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise ApiStatus(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content}"
            )
        return self._merge_patch(kind, key, patch, sub, query, dry)

    @staticmethod
    def _parse(body: bytes) -> dict[str, Any]:
        try:
            data = yaml.safe_load(body.decode() or "{}")
        except yaml.YAMLError as exc:
            raise ApiStatus(400, "BadRequest", f"error decoding body: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiStatus(400, "BadRequest", "the body must be an object")
        return data

    def _not_found(self, kind: Kind, name: str) -> ApiStatus:
        res = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
        return ApiStatus(404, "NotFound", f'{res} "{name}" not found', {"name": name, "kind": kind.plural})

    def _must(self, kind: Kind, key: tuple[str, str, str]) -> dict[str, Any]:
        obj = self.store.get(key)
        if obj is None:
            raise self._not_found(kind, key[2])
        return obj

    def _list(self, kind: Kind, ns: str | None, query: dict[str, str]) -> dict[str, Any]:
        try:
            items = [
                o
                for o in self.store.items(kind.rid, ns)
                if match_labels(query.get("labelSelector"), o["metadata"].get("labels"))
                and match_fields(query.get("fieldSelector"), o)
            ]
        except ValueError as exc:
            raise ApiStatus(400, "BadRequest", str(exc)) from exc
        return {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": {"resourceVersion": str(self.store.current_rv)},
            "items": items,
        }

    def _check_namespace(self, kind: Kind, ns: str | None) -> None:
        if kind.namespaced and self.store.get(("/v1/namespaces", "", ns or "")) is None:
            raise ApiStatus(
                404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"}
            )

    def _admit(self, kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None, strict: bool) -> None:
        """Schema validation for custom resources, then Grove's webhooks (defaulting, frozen fields)."""
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        if kind.crd:
            crd = self.store.get((CRD_RID, "", kind.crd), copied=False)
            assert crd is not None
            causes = schema.validate(
                crd, kind.version, {k: v for k, v in obj.items() if k != "status"}, strict=strict
            )
            unknown = [c for c in causes if c["message"] == "field not declared in schema"]
            if unknown:  # kube-apiserver: a strict decoding error, 400 before any validation
                listed = ", ".join(f'unknown field "{c["field"]}"' for c in unknown)
                raise ApiStatus(400, "BadRequest", f"strict decoding error: {listed}")
        else:
            causes = validate_builtin(kind.kind, obj, old)
        if causes:
            what = f"{kind.kind}.{kind.group}" if kind.group and kind.crd else kind.kind
            listed = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
            name = obj["metadata"]["name"]
            details = {"name": name, "group": kind.group, "kind": kind.kind, "causes": causes}
            raise ApiStatus(422, "Invalid", f'{what} "{name}" is invalid: [{listed}]', details)
        denied = grove_admit(kind.kind, obj, old)
        if denied:
            raise ApiStatus(
                403,
                "Forbidden",
                f'admission webhook "pcs.validating.webhooks.grove.io" denied the request: {denied}',
            )

    def _schema(self, kind: Kind) -> ssa.Schema:
        """The served version's ``openAPIV3Schema`` of a custom resource (its list types drive apply)."""
        if not kind.crd:
            return None
        crd = self.store.get((CRD_RID, "", kind.crd), copied=False)
        served = next(
            (v for v in (crd or {}).get("spec", {}).get("versions", []) if v["name"] == kind.version), None
        )
        return (served or {}).get("schema", {}).get("openAPIV3Schema")

    def _managed(
        self, obj: dict[str, Any], manager: str, op: str, paths: set[ssa.Path], sub: str | None = None
    ) -> None:
        entries = [
            m
            for m in obj["metadata"].get("managedFields") or []
            if not (m["manager"] == manager and m["operation"] == op and m.get("subresource") == sub)
        ]
        if paths:
            entry = {
                "manager": manager,
                "operation": op,
                "apiVersion": obj["apiVersion"],
                "time": now(),
                "fieldsType": "FieldsV1",
                "fieldsV1": ssa.to_fieldsv1(paths),
            }
            if sub:
                entry["subresource"] = sub
            entries.append(entry)
        obj["metadata"]["managedFields"] = entries

    @staticmethod
    def owners(obj: dict[str, Any]) -> dict[str, set[ssa.Path]]:
        out: dict[str, set[ssa.Path]] = {}
        for m in obj["metadata"].get("managedFields") or []:
            out.setdefault(m["manager"], set()).update(ssa.from_fieldsv1(m.get("fieldsV1") or {}))
        return out

    def _store(
        self, kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None, dry: bool
    ) -> dict[str, Any]:
        if old is not None and (obj.get("spec") != old.get("spec")):
            obj["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if dry:
            obj["metadata"].setdefault("uid", (old or {}).get("metadata", {}).get("uid", "dry-run"))
            obj["metadata"].setdefault("creationTimestamp", now())
            return obj
        return self.store.put(kind.rid, obj)

    def _create(
        self, kind: Kind, ns: str | None, obj: dict[str, Any], query: dict[str, str], dry: bool
    ) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            meta["namespace"] = ns
        self._check_namespace(kind, ns)
        if self.store.get((kind.rid, ns or "", meta.get("name", ""))) is not None:
            raise ApiStatus(409, "AlreadyExists", f'{kind.plural} "{meta.get("name")}" already exists')
        self._admit(kind, obj, None, query.get("fieldValidation") == "Strict")
        self._managed(
            obj, query.get("fieldManager", "unknown"), "Update", ssa.fields_of(obj, self._schema(kind))
        )
        return self._store(kind, obj, None, dry)

    def _delete(
        self, kind: Kind, key: tuple[str, str, str], dry: bool, policy: str = "Background"
    ) -> dict[str, Any]:
        obj = self._must(kind, key)
        if dry:
            return obj
        gone = self.store.delete(key, policy=policy)
        if gone is not None and self.store.get(key) is not None:
            return gone  # finalizers pending: the object with its deletionTimestamp
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": key[2], "kind": kind.plural, "uid": obj["metadata"]["uid"]},
        }
