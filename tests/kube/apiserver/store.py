"""The double's object store: resource versions, watch events, owner-reference garbage collection.

Garbage collection is not instant, as in a real cluster: ``collect_garbage`` (run by the cluster's
controller loop) deletes objects whose owners are all gone, and finishes foreground deletions (the
``foregroundDeletion`` finalizer stays until the owner's dependents are gone).

Everything is guarded by one condition variable; watchers wait on it for new events.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "Key", "Store", "now"]

Key = tuple[str, str, str]  # (resource id "group/version/plural", namespace or "", name)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Event:
    rv: int
    type: str
    rid: str
    obj: dict[str, Any]
    old: dict[str, Any] | None = None  # the version before a MODIFIED: a watcher's selector may stop matching


@dataclass
class Store:
    """All objects of the double, keyed by resource id, namespace and name."""

    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=lambda: threading.Condition(threading.RLock()))
    _rv: itertools.count = field(default_factory=lambda: itertools.count(1000))
    closed: bool = False
    compacted_rv: int = 0  # events up to here are gone: a watch from an older version gets 410 Gone

    def next_rv(self) -> int:
        return next(self._rv)

    @property
    def current_rv(self) -> int:
        return self.events[-1].rv if self.events else max(999, self.compacted_rv)

    def get(self, key: Key, *, copied: bool = True) -> dict[str, Any] | None:
        """The object (a copy unless ``copied=False``: then the caller only reads it)."""
        with self.cond:
            obj = self.objects.get(key)
            return copy.deepcopy(obj) if obj is not None and copied else obj

    def items(self, rid: str, namespace: str | None, *, copied: bool = True) -> list[dict[str, Any]]:
        with self.cond:
            return [
                copy.deepcopy(o) if copied else o
                for (r, ns, _), o in sorted(self.objects.items())
                if r == rid and (namespace is None or ns == namespace)
            ]

    def put(self, rid: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace; stamps uid, creationTimestamp, resourceVersion; emits ADDED or MODIFIED."""
        with self.cond:
            meta = obj.setdefault("metadata", {})
            key = (rid, meta.get("namespace") or "", meta["name"])
            old = self.objects.get(key)
            if old is None:
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", now())
                meta.setdefault("generation", 1)
            else:
                meta["uid"] = old["metadata"]["uid"]
                meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            rv = self.next_rv()
            meta["resourceVersion"] = str(rv)
            self.objects[key] = copy.deepcopy(obj)
            self._emit(rv, "MODIFIED" if old is not None else "ADDED", rid, obj, old)
            return copy.deepcopy(obj)

    def _emit(
        self, rv: int, kind: str, rid: str, obj: dict[str, Any], old: dict[str, Any] | None = None
    ) -> None:
        self.events.append(Event(rv, kind, rid, copy.deepcopy(obj), old))
        self.cond.notify_all()

    def compact(self) -> int:
        """Forget the event history up to now, as etcd compaction does; returns the compacted version."""
        with self.cond:
            self.compacted_rv = self.current_rv
            self.events = [e for e in self.events if e.rv > self.compacted_rv]
            return self.compacted_rv

    def remove(self, key: Key) -> dict[str, Any] | None:
        """Delete now (no finalizers left): emits DELETED; dependents go later, by ``collect_garbage``."""
        with self.cond:
            obj = self.objects.pop(key, None)
            if obj is None:
                return None
            rv = self.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            self._emit(rv, "DELETED", key[0], obj)
            return obj

    def dependents(self, uid: str) -> list[Key]:
        with self.cond:
            return [
                k
                for k, o in self.objects.items()
                if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])
            ]

    def collect_garbage(self) -> bool:
        """One pass of the garbage collector; True when it changed anything."""
        changed = False
        with self.cond:
            present = {o["metadata"]["uid"] for o in self.objects.values()}
            for key, obj in list(self.objects.items()):
                meta = obj["metadata"]
                owners = meta.get("ownerReferences") or []
                if (
                    owners
                    and not any(r.get("uid") in present for r in owners)
                    and not meta.get("deletionTimestamp")
                ):
                    self.delete(key)
                    changed = True
                elif "foregroundDeletion" in (meta.get("finalizers") or []) and meta.get("deletionTimestamp"):
                    waiting = self.dependents(meta["uid"])
                    for dep in waiting:
                        current = self.objects.get(dep)
                        if current is not None and not current["metadata"].get("deletionTimestamp"):
                            self.delete(dep)
                            changed = True
                    if not waiting:
                        done = copy.deepcopy(obj)
                        done["metadata"]["finalizers"].remove("foregroundDeletion")
                        if done["metadata"]["finalizers"]:
                            self.put(key[0], done)
                        else:
                            self.remove(key)
                        changed = True
        return changed

    def delete(self, key: Key, *, policy: str = "Background") -> dict[str, Any] | None:
        """Delete, or mark for deletion while finalizers remain (their owner removes them later).

        ``Foreground`` keeps the object (``foregroundDeletion`` finalizer) until its dependents are gone;
        ``Orphan`` cuts the dependents loose; ``Background`` leaves them to the garbage collector."""
        with self.cond:
            obj = self.objects.get(key)
            if obj is None:
                return None
            uid = obj["metadata"]["uid"]
            if policy == "Orphan":
                for dep in self.dependents(uid):
                    loose = copy.deepcopy(self.objects[dep])
                    refs = [r for r in loose["metadata"]["ownerReferences"] if r.get("uid") != uid]
                    loose["metadata"]["ownerReferences"] = refs
                    self.put(dep[0], loose)
            elif policy == "Foreground" and "foregroundDeletion" not in (
                obj["metadata"].get("finalizers") or []
            ):
                obj = copy.deepcopy(obj)
                obj["metadata"].setdefault("finalizers", []).append("foregroundDeletion")
                obj["metadata"].setdefault("deletionTimestamp", now())
                return self.put(key[0], obj)
            if obj["metadata"].get("finalizers"):
                if not obj["metadata"].get("deletionTimestamp"):
                    obj = copy.deepcopy(obj)
                    obj["metadata"]["deletionTimestamp"] = now()
                    return self.put(key[0], obj)
                return copy.deepcopy(obj)
            return self.remove(key)

    def since(self, rv: int) -> list[Event]:
        with self.cond:
            return [e for e in self.events if e.rv > rv]

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
