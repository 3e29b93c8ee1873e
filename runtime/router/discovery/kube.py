"""Discovery through the Kubernetes API: list, then watch, the pods of a label selector; keep the ready ones.

The official ``kubernetes`` client is synchronous, so each watch runs in a daemon thread and hands
the current set of worker URLs to the event loop (``call_soon_threadsafe``) whenever it changes. A
watch that expires is renewed from the last resourceVersion; a 410 Gone (history compacted) or any
other error leads to a fresh list after a short pause. A pod counts when it is Running, its Ready
condition is True, it has an IP and it is not being deleted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from runtime.errors import DiscoveryError

__all__ = ["PodWatcher", "api_client", "pod_url"]

log = logging.getLogger("grove.router.discovery")


def api_client(api_server: str | None = None) -> Any:
    """A ``kubernetes.client.ApiClient``: for ``api_server`` if given, else in-cluster, else kubeconfig.

    Raises:
        DiscoveryError: no configuration could be loaded.
    """
    from kubernetes import client, config

    if api_server:
        cfg = client.Configuration()
        cfg.host = api_server.rstrip("/")
        return client.ApiClient(cfg)
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        try:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        except Exception as exc:  # ConfigException, or a missing/invalid kubeconfig file
            raise DiscoveryError(
                f"no Kubernetes API access (not in a cluster, no kubeconfig): {exc}"
            ) from exc
    return client.ApiClient()


def pod_url(pod: Any, *, port: int, scheme: str = "http") -> str | None:
    """The worker URL of a ready pod, or None while it is not ready (or going away)."""
    if pod.metadata.deletion_timestamp is not None or pod.status is None:
        return None
    if pod.status.phase != "Running" or not pod.status.pod_ip:
        return None
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())
    if not ready:
        return None
    ip = pod.status.pod_ip
    host = f"[{ip}]" if ":" in ip else ip
    return f"{scheme}://{host}:{port}"


class PodWatcher:
    """Keeps ``on_change(urls)`` up to date with the ready pods of ``selector`` in ``namespace``."""

    def __init__(
        self,
        *,
        api: Any,
        namespace: str,
        selector: str,
        port: int,
        on_change: Callable[[list[str]], None],
        loop: asyncio.AbstractEventLoop,
        scheme: str = "http",
        keep: Callable[[Any], bool] = lambda pod: True,
        watch_timeout: int = 60,
    ) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api)
        self.namespace, self.selector, self.port, self.scheme = namespace, selector, port, scheme
        self._on_change, self._loop, self._keep = on_change, loop, keep
        self._watch_timeout = watch_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pods: dict[str, str | None] = {}
        self._last: list[str] | None = None
        self._watch: Any = None
        self._version = ""

    def list_now(self) -> str:
        """One list call: sets the pod table and returns its resourceVersion (errors propagate)."""
        pods: Any = self._core.list_namespaced_pod(self.namespace, label_selector=self.selector)
        self._pods = {p.metadata.name: self._url(p) for p in pods.items}
        self._emit()
        self._version = str(pods.metadata.resource_version or "")
        return self._version

    def start(self) -> None:
        """Start the list+watch loop in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name=f"kube-watch {self.selector}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end; the thread finishes within the watch timeout (it is a daemon either way)."""
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def _url(self, pod: Any) -> str | None:
        if not self._keep(pod):
            return None
        return pod_url(pod, port=self.port, scheme=self.scheme)

    def _emit(self) -> None:
        urls = sorted({u for u in self._pods.values() if u})
        if urls != self._last:
            self._last = urls
            self._loop.call_soon_threadsafe(self._on_change, urls)

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        pause = 0.5
        version = self._version
        while not self._stop.is_set():
            try:
                if not version:
                    version = self.list_now()
                self._watch = watch.Watch()  # type: ignore[no-untyped-call]
                for event in self._watch.stream(
                    self._core.list_namespaced_pod,
                    self.namespace,
                    label_selector=self.selector,
                    resource_version=version,
                    timeout_seconds=self._watch_timeout,
                    _request_timeout=self._watch_timeout + 10,
                ):
                    if self._stop.is_set():
                        return
                    pod = event["object"]
                    if event["type"] == "DELETED":
                        self._pods.pop(pod.metadata.name, None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self._pods[pod.metadata.name] = self._url(pod)
                    version = pod.metadata.resource_version or version
                    self._emit()
                pause = 0.5
            except ApiException as exc:
                if exc.status == 410:
                    version = ""  # history compacted: list again
                    continue
                log.warning("pod watch %s failed: HTTP %s %s", self.selector, exc.status, exc.reason)
                version = ""
            except Exception as exc:  # noqa: BLE001 - connection reset, timeout, bad event: list again
                log.warning("pod watch %s failed: %s", self.selector, exc)
                version = ""
            if self._stop.wait(pause):
                return
            pause = min(pause * 2, 10.0)
