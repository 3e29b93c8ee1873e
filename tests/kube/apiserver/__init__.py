"""A Kubernetes API server double for the deploy path's tests. It is a double, not Kubernetes.

No real API server can run on these machines, so this package serves, on 127.0.0.1 and an ephemeral
port, the slice of the REST protocol the official ``kubernetes`` client uses for grove-pipelines:
discovery (``/api``, ``/apis``, group versions), CRD get, server-side apply
(``application/apply-patch+yaml`` with ``fieldManager``, ``force``, managed fields and 409 conflicts
listing the fields), get, list with label/field selectors, watch (chunked JSON events), ``/scale`` on
the Grove kinds, the pod proxy to a real server a test attaches (``attach``), delete with
owner-reference garbage collection, ``dryRun=All``, bearer-token 401 and
RBAC-style 403. Grove objects are validated against the real Grove CRD schema, and ``grove`` (a
``GroveSim``) plays Grove's operator simply: PodCliques, scaling groups, PodGangs and pods that become
ready, or stay stuck on cue. What it does not do: CEL rules, admission beyond a sliver of Grove's
webhook, strategic merge (treated as JSON merge), resourceVersion conflicts on update.

    with ApiServerDouble() as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", namespace="demo")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from tests.kube.apiserver.api import Api
from tests.kube.apiserver.grove import GroveSim
from tests.kube.apiserver.resources import CRD_RID
from tests.kube.apiserver.schema import load_crds
from tests.kube.apiserver.server import HttpDouble
from tests.kube.apiserver.store import Store

__all__ = ["ApiServerDouble"]


class ApiServerDouble:
    """One double: store + REST semantics + HTTP server + Grove sim (running unless ``grove_running=False``)."""

    def __init__(
        self,
        *,
        grove_installed: bool = True,
        grove_running: bool = True,
        namespaces: tuple[str, ...] = ("default", "demo"),
        token: str = "double-token",
    ) -> None:
        self.store = Store()
        self.api = Api(self.store, tokens={token: "alice"})
        self.http = HttpDouble(self.store, self.api)
        self.grove = GroveSim(self.store)
        self.token = token
        self._grove_running = grove_running
        for ns in namespaces:
            self.add("/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        if grove_installed:
            for crd in load_crds():
                self.add(CRD_RID, crd)

    # -- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.http.start()
        if self._grove_running:
            self.grove.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.grove.stop()
        self.http.stop()

    @property
    def url(self) -> str:
        return self.http.url

    def write_kubeconfig(self, path: Path, *, namespace: str = "default", token: str | None = None) -> Path:
        return self.http.write_kubeconfig(path, namespace=namespace, token=token or self.token)

    # -- test controls -------------------------------------------------------------------------------
    def add(self, rid: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Put an object straight into the store (no admission), as if someone had created it earlier."""
        return self.store.put(rid, obj)

    def get(self, rid: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get((rid, namespace, name))

    def items(self, rid: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.store.items(rid, namespace)

    def settle(self) -> None:
        """Let Grove's part run until nothing changes any more (deterministic, whatever the machine's load)."""
        for _ in range(100):
            if not self.grove.reconcile():
                return
        raise AssertionError("the Grove double did not settle in 100 passes")

    def forbid(self, verb: str, plural: str) -> None:
        """RBAC refuses ``verb`` (``*`` for all) on ``plural`` from now on."""
        self.api.forbidden.append((verb, plural))

    def expire_next_watches(self, count: int = 1) -> None:
        """The next ``count`` watches find their resourceVersion compacted: an ``ERROR`` event, 410."""
        self.api.expire_watches += count

    def compact(self) -> int:
        """Drop the event history (etcd compaction): older watch versions now get 410."""
        return self.store.compact()

    def attach(self, namespace: str, pod: str, port: int, address: str) -> None:
        """Pod ``pod``'s ``port`` is served by the real server at ``address`` (``127.0.0.1:N``), for the
        pod proxy (``/api/v1/namespaces/NS/pods/NAME:PORT/proxy/...``)."""
        obj = self.store.get(("/v1/pods", namespace, pod))
        ip = ((obj or {}).get("status") or {}).get("podIP")
        assert ip, f"pod {namespace}/{pod} has no IP yet (not running)"
        self.http.proxy.attach(ip, port, address)

    def fail(self, path_contains: str, status: int, **kwargs: Any) -> None:
        self.http.fail(path_contains, status, **kwargs)

    def calls(self, method: str | None = None, contains: str = "") -> list[tuple[str, str, dict[str, str]]]:
        """Recorded requests, filtered by method and a substring of the path."""
        return [c for c in self.api.calls if (method is None or c[0] == method) and contains in c[1]]
