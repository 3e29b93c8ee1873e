"""A test double of the Kubernetes API's pods list and watch endpoints, for the router's discovery.

No Kubernetes API server can run on these machines, so this aiohttp server on 127.0.0.1 speaks the
two calls the official client makes for a pod watch: ``GET /api/v1/namespaces/{ns}/pods`` (a
PodList with a resourceVersion) and the same with ``watch=true`` (newline-delimited watch events
after that resourceVersion, kept open until ``timeoutSeconds``). Label selectors support the
equality form ``k=v,k2=v2``. ``forbidden=True`` answers 403 like an API without RBAC for pods.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

__all__ = ["FakePodsAPI"]


class FakePodsAPI:
    """Pods live in ``self.pods``; change them with :meth:`put` / :meth:`delete` and watchers are told."""

    def __init__(self, *, forbidden: bool = False) -> None:
        self.forbidden = forbidden
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 100
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.calls: list[str] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._pods)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def put(
        self,
        name: str,
        *,
        labels: dict[str, str],
        ip: str = "127.0.0.1",
        ready: bool = True,
        namespace: str = "default",
    ) -> None:
        """Create or update a pod (Running; Ready as given)."""
        kind = "MODIFIED" if (namespace, name) in self.pods else "ADDED"
        self.version += 1
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "resourceVersion": str(self.version),
            },
            "status": {
                "phase": "Running",
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }
        self.pods[(namespace, name)] = pod
        await self._publish(kind, pod)

    async def delete(self, name: str, namespace: str = "default") -> None:
        pod = self.pods.pop((namespace, name))
        self.version += 1
        pod["metadata"]["resourceVersion"] = str(self.version)
        await self._publish("DELETED", pod)

    async def _publish(self, kind: str, pod: dict[str, Any]) -> None:
        self.events.append((self.version, kind, json.loads(json.dumps(pod))))
        async with self._changed:
            self._changed.notify_all()

    @staticmethod
    def _selected(pod: dict[str, Any], namespace: str, selector: str) -> bool:
        if pod["metadata"]["namespace"] != namespace:
            return False
        labels = pod["metadata"]["labels"]
        terms = [t.split("=", 1) for t in selector.split(",") if t]
        return all(labels.get(k) == v for k, v in terms)

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        ns, query = request.match_info["ns"], request.query
        selector = query.get("labelSelector", "")
        self.calls.append(
            ("watch " if query.get("watch", "").lower() in ("true", "1") else "list ") + selector
        )
        if self.forbidden:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Forbidden",
                "message": f'pods is forbidden: cannot list resource "pods" in namespace "{ns}"',
                "code": 403,
            }
            return web.json_response(status, status=403)
        if query.get("watch", "").lower() not in ("true", "1"):
            items = [p for p in self.pods.values() if self._selected(p, ns, selector)]
            return web.json_response(
                {
                    "kind": "PodList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(self.version)},
                    "items": items,
                }
            )
        since = int(query.get("resourceVersion") or 0)
        timeout = float(query.get("timeoutSeconds") or 30)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            pending = [e for e in self.events if e[0] > since]
            if pending:  # no await between this check and the wait below, so no event is missed
                for version, kind, pod in pending:
                    since = version
                    if self._selected(pod, ns, selector):
                        await resp.write(json.dumps({"type": kind, "object": pod}).encode() + b"\n")
                continue
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), max(0.01, deadline - loop.time()))
                except TimeoutError:
                    break
        await resp.write_eof()
        return resp
