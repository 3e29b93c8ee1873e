"""A thin, generic REST client over the official ``kubernetes`` package: any kind, by apiVersion/kind.

The official client brings kubeconfig auth, TLS and the HTTP pool; this module adds what every verb
needs and nothing more: discovery (kind -> plural, namespaced), plain-dict bodies, server-side apply,
``/scale``, watch streams, retries on 429/5xx honouring ``Retry-After``, and error translation (every
call runs inside ``errors.translate``). Verbs keep their logic in their own modules.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import quote

from kubernetes import client as k8s

from grove_pipelines.kube.errors import (
    KubeAPIError,
    KubeNotFoundError,
    KubeServerError,
    KubeTooManyRequestsError,
    translate,
)

__all__ = ["FIELD_MANAGER", "KubeClient", "Resource", "display"]

FIELD_MANAGER = "grove-pipelines"
"""The server-side apply field manager of everything grove-pipelines writes."""

JSON = "application/json"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
ATTEMPTS = 3
MAX_RETRY_AFTER = 10.0
log = logging.getLogger("grove_pipelines.kube")


@dataclass(frozen=True)
class Resource:
    """What discovery says about a kind: where it lives in the REST tree."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
        return base


def display(obj: dict[str, Any]) -> str:
    """``PodCliqueSet demo/rag`` for messages."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind', '?')} {ns + '/' if ns else ''}{meta.get('name', '?')}"


class KubeClient:
    """One cluster connection. ``namespace`` is the kubeconfig context's default namespace."""

    def __init__(self, api: k8s.ApiClient, *, where: str, namespace: str = "default") -> None:
        self.api = api
        self.where = where
        self.namespace = namespace
        self.host = str(api.configuration.host)
        self._resources: dict[tuple[str, str], Resource] = {}
        self._lists: dict[str, list[dict[str, Any]]] = {}

    def close(self) -> None:
        """Release the HTTP pool."""
        self.api.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        query: list[tuple[str, Any]],
        body: Any,
        content_type: str,
        timeout: float | tuple[float, float],
        stream: bool = False,
    ) -> Any:
        headers = {"Accept": JSON, "Content-Type": content_type}
        request = self.api.param_serialize(
            method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self.api.call_api(*request, _request_timeout=timeout)
        if stream and 200 <= response.status <= 299:
            return response
        response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status <= 299:
            self.api.response_deserialize(response, {})  # raises the client's ApiException
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = JSON,
        timeout: float | tuple[float, float] = (10, 60),
    ) -> dict[str, Any]:
        """One REST call with retries on 429 and 5xx; the JSON answer as a dict.

        ``action`` completes "cannot ..." in the error a failure raises.
        """
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with translate(action, host=self.host, where=self.where):
                    response = self._call(method, path, list(query or []), body, content_type, timeout)
                data = response.data
                return json.loads(data) if data else {}
            except (KubeTooManyRequestsError, KubeServerError) as exc:
                if attempt == ATTEMPTS or exc.status == 501:
                    raise
                delay = min(
                    exc.retry_after if exc.retry_after is not None else 0.5 * attempt, MAX_RETRY_AFTER
                )
                log.warning(
                    "attempt %d/%d failed; will retry in %.1fs: %s %s -> %s",
                    attempt,
                    ATTEMPTS,
                    delay,
                    method,
                    path,
                    exc,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_text(
        self, path: str, *, action: str, limit: int, timeout: float | tuple[float, float] = (5, 10)
    ) -> str:
        """One GET of a text answer (a pod's ``/metrics`` through the API server's proxy), at most ``limit``
        bytes. No retries: what it reads is a live view, and a pod that does not answer is reported."""
        with translate(action, host=self.host, where=self.where):
            request = self.api.param_serialize(
                "GET", path, header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"]
            )
            response = self.api.call_api(*request, _request_timeout=timeout)
            try:
                if not 200 <= response.status <= 299:
                    response.read()  # type: ignore[no-untyped-call]
                    self.api.response_deserialize(response, {})  # raises the client's ApiException
                body: bytes = response.response.read(limit + 1, decode_content=True)
            finally:
                response.response.release_conn()
        if len(body) > limit:
            raise KubeAPIError(f"cannot {action}: the answer is larger than {limit} bytes", status=200)
        return body.decode("utf-8", errors="replace")

    def server_version(self) -> dict[str, Any]:
        """``GET /version``: the cheapest proof that the cluster answers and our credentials work."""
        return self.request("GET", "/version", action="read the cluster's version")

    def resources_of(self, api_version: str) -> list[dict[str, Any]]:
        """The APIResourceList of one group version (cached); ``KubeNotFoundError`` when not served."""
        if api_version not in self._lists:
            prefix = "/api/" if "/" not in api_version else "/apis/"
            data = self.request("GET", prefix + api_version, action=f"discover the API {api_version}")
            self._lists[api_version] = list(data.get("resources") or [])
        return self._lists[api_version]

    def resource(self, api_version: str, kind: str) -> Resource:
        """Discovery: the plural and scope of ``kind`` in ``api_version``."""
        key = (api_version, kind)
        if key not in self._resources:
            for entry in self.resources_of(api_version):
                if entry.get("kind") == kind and "/" not in entry.get("name", ""):
                    self._resources[key] = Resource(
                        api_version, kind, entry["name"], bool(entry.get("namespaced"))
                    )
                    break
            else:
                raise KubeNotFoundError(
                    f"the cluster does not serve kind {kind} in {api_version}", status=404, reason="NotFound"
                )
        return self._resources[key]

    def _ns(self, res: Resource, namespace: str | None) -> str | None:
        return (namespace or self.namespace) if res.namespaced else None

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        res = self.resource(api_version, kind)
        ns = self._ns(res, namespace)
        try:
            return self.request("GET", res.path(ns, name), action=f"read {kind} {_qual(ns, name)}")
        except KubeNotFoundError:
            return None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> dict[str, Any]:
        """A list object: ``items`` and ``metadata.resourceVersion`` (to watch from)."""
        res = self.resource(api_version, kind)
        ns = self._ns(res, namespace)
        query = [
            (k, v) for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v
        ]
        return self.request(
            "GET", res.path(ns), query=query, action=f"list {res.plural} in {ns or 'the cluster'}"
        )

    def apply(self, obj: dict[str, Any], *, force: bool = False, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply of ``obj`` as field manager ``grove-pipelines``; the object the server keeps."""
        res = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        ns = self._ns(res, meta.get("namespace"))
        query: list[tuple[str, Any]] = [("fieldManager", FIELD_MANAGER), ("fieldValidation", "Strict")]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        return self.request(
            "PATCH",
            res.path(ns, meta["name"]),
            query=query,
            body=json.dumps(obj),
            content_type=APPLY,
            action=f"apply {obj['kind']} {_qual(ns, meta['name'])}",
        )

    def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Create ``obj`` (POST): for objects we only ever make, never change (needs ``create``, not ``patch``)."""
        res = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        ns = self._ns(res, meta.get("namespace"))
        query: list[tuple[str, Any]] = [("fieldManager", FIELD_MANAGER)] + (
            [("dryRun", "All")] if dry_run else []
        )
        return self.request(
            "POST", res.path(ns), query=query, body=obj,
            action=f"create {obj['kind']} {_qual(ns, meta['name'])}",
        )  # fmt: skip

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation: str = "Foreground",
    ) -> dict[str, Any] | None:
        """Delete one object (its dependents per ``propagation``); None when it was already gone."""
        res = self.resource(api_version, kind)
        ns = self._ns(res, namespace)
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        try:
            return self.request(
                "DELETE", res.path(ns, name), body=body, action=f"delete {kind} {_qual(ns, name)}"
            )
        except KubeNotFoundError:
            return None

    def scale(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        replicas: int,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Set ``spec.replicas`` through the ``/scale`` subresource (Grove ignores template replicas later)."""
        res = self.resource(api_version, kind)
        ns = self._ns(res, namespace)
        query: list[tuple[str, Any]] = [("fieldManager", FIELD_MANAGER)] + (
            [("dryRun", "All")] if dry_run else []
        )
        return self.request(
            "PATCH",
            res.path(ns, name, "scale"),
            query=query,
            body={"spec": {"replicas": replicas}},
            content_type=MERGE,
            action=f"scale {kind} {_qual(ns, name)} to {replicas}",
        )

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 30,
    ) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}``) from ``resource_version`` until the server ends the stream.

        An ``ERROR`` event (e.g. 410 Gone: the version is too old) is raised as a ``KubeAPIError``.
        """
        res = self.resource(api_version, kind)
        ns = self._ns(res, namespace)
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", timeout_seconds),
            ("allowWatchBookmarks", "true"),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        action = f"watch {res.plural} in {ns or 'the cluster'}"
        with translate(action, host=self.host, where=self.where):
            response = self._call(
                "GET", res.path(ns), query, None, JSON, (10, timeout_seconds + 10), stream=True
            )
            try:
                buffer = b""
                for chunk in response.response.stream(amt=None, decode_content=False):
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            yield _event(json.loads(line), action)
            finally:
                response.response.close()  # an unfinished stream must not go back to the pool


def _event(event: dict[str, Any], action: str) -> dict[str, Any]:
    if event.get("type") == "ERROR":
        status = event.get("object") or {}
        code = int(status.get("code") or 500)
        raise KubeAPIError(
            f"cannot {action}: {status.get('message', 'watch error')} (HTTP {code})",
            status=code,
            reason=str(status.get("reason", "")),
        )
    return event


def _qual(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name
