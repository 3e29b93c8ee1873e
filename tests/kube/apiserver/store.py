"""The double's object store: resource versions, watch events, owner-reference garbage collection.

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
        """Delete now (no finalizers left): emits DELETED and collects dependents by ownerReferences."""
        with self.cond:
            obj = self.objects.pop(key, None)
            if obj is None:
                return None
            rv = self.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            self._emit(rv, "DELETED", key[0], obj)
            uid = obj["metadata"]["uid"]
            for dep_key, dep in list(self.objects.items()):
                owners = dep["metadata"].get("ownerReferences") or []
                if any(o.get("uid") == uid for o in owners):
                    self.delete(dep_key)
            return obj

    def delete(self, key: Key) -> dict[str, Any] | None:
        """Delete, or mark for deletion while finalizers remain (their owner removes them later)."""
        with self.cond:
            obj = self.objects.get(key)
            if obj is None:
                return None
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
