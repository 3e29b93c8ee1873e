"""The compiled documents run on this machine as Grove and the kubelet would run them.

:class:`LocalCluster` takes the documents ``compile`` emits (PodCliqueSet, Services, RBAC): it makes a
pod network (:mod:`~grove_pipelines.local.netns`), one namespace per Grove pod with its hosts file
(:mod:`~grove_pipelines.local.hosts`), an address and forwarder per ClusterIP Service
(:mod:`~grove_pipelines.local.services`), and starts each pod once its ``startsAfter`` parents are
Ready (:mod:`~grove_pipelines.local.gating`) with the environment and argv the kubelet would give it
(:mod:`~grove_pipelines.local.container_env`), rewritten only by the local profile
(:mod:`~grove_pipelines.local.profile`). ``ready_order`` records the order pods became Ready.

Everything runs on one asyncio loop; :meth:`stop` terminates the pods (preStop, SIGTERM, grace)
and removes every namespace, link and file the run made.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from grove_pipelines.errors import RunError
from grove_pipelines.local.container_env import ContainerLaunch, container_launch
from grove_pipelines.local.gating import unmet
from grove_pipelines.local.hosts import hosts_file
from grove_pipelines.local.identity import GrovePod, grove_pods
from grove_pipelines.local.netns import Network
from grove_pipelines.local.pods import LocalPod
from grove_pipelines.local.profile import CannotRunHere
from grove_pipelines.local.services import Endpoint, ServiceForwarder
from grove_pipelines.spec.server_auth import new_secret_value, secret_key_refs
from grove_pipelines.spec.tracing import TRACE_STORE_ENV
from runtime.engines.nixl_progress import DELAY_ENV as NIXL_DELAY_ENV

__all__ = ["RUNTIME_SETTINGS", "ContainerRewrite", "LocalCluster", "image_env"]

ContainerRewrite = Callable[[GrovePod, Mapping[str, Any]], Mapping[str, Any]]
"""The local profile's rewrite of one container (raises CannotRunHere for a pod that cannot run)."""


class LocalCluster:
    """Runs the documents; use :meth:`start`, then :meth:`stop` (always)."""

    def __init__(
        self, documents: Sequence[Mapping[str, Any]], *, rewrite: ContainerRewrite, log_dir: Path,
        progress: Callable[[str], None] = lambda line: None,
    ) -> None:  # fmt: skip
        kinds = [d.get("kind") for d in documents]
        if kinds.count("PodCliqueSet") != 1:
            raise RunError(f"expected one PodCliqueSet in the documents, found {kinds.count('PodCliqueSet')}")
        self.pcs = next(d for d in documents if d["kind"] == "PodCliqueSet")
        self.services = [
            d for d in documents if d["kind"] == "Service" and d["spec"].get("clusterIP") != "None"
        ]
        self.rewrite = rewrite
        self.log_dir = log_dir
        self.progress = progress
        self.grove = grove_pods(self.pcs)
        self.pods: dict[str, LocalPod] = {}
        self.skipped: dict[str, str] = {}
        self.ready_order: list[str] = []
        self.service_addresses: dict[str, str] = {}
        self.forwarders: dict[str, ServiceForwarder] = {}
        self.network: Network | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self.started_at = time.monotonic()
        self.image_env = image_env()
        self.secrets: dict[str, dict[str, str]] = {}  # what deploy creates: random values, for this run only
        for secret, key in secret_key_refs(self.pcs):
            self.secrets.setdefault(secret, {}).setdefault(key, new_secret_value())

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Network, namespaces, hosts files and Services; pods start as their parents become Ready."""
        self.network = network = Network()
        nets = {pod.name: network.add_pod(pod.name) for pod in self.grove}
        for service in self.services:
            self.service_addresses[service["metadata"]["name"]] = network.add_service_address()
        addresses = [(pod, nets[pod.name].ip) for pod in self.grove]
        for pod in self.grove:
            network.write_hosts(pod.name, hosts_file(pod, addresses, self.service_addresses))
        for service in self.services:
            name = service["metadata"]["name"]
            forwarder = ServiceForwarder(service, functools.partial(self.endpoints, service))
            await forwarder.listen(self.service_addresses[name])
            self.forwarders[name] = forwarder
        self._check_expansion(nets)
        for pod in self.grove:
            try:
                launches, spec = self._launches(pod, nets[pod.name].ip)
            except CannotRunHere as exc:
                self.skipped[pod.name] = str(exc)
                continue
            self.pods[pod.name] = LocalPod(
                pod.name, nets[pod.name], spec, launches, log_dir=self.log_dir, on_change=self._pod_changed
            )
        for name, why in self.skipped.items():
            self.progress(f"pod {name}: not run here: {why}")
        for pod in self.grove:
            if pod.name in self.pods:
                self._tasks.append(asyncio.create_task(self._start_when_ready(pod)))

    def _check_expansion(self, nets: Mapping[str, Any]) -> None:
        """Every ``$(VAR)`` of every container as compiled (before the local profile) must expand."""
        assert self.network is not None
        missing = []
        for pod in self.grove:
            for container in [
                *(pod.pod_spec.get("initContainers") or ()),
                *(pod.pod_spec.get("containers") or ()),
            ]:
                launch = container_launch(
                    pod,
                    container,
                    pod_ip=nets[pod.name].ip,
                    host_ip=self.network.gateway,
                    secrets=self.secrets,
                )
                missing += [f"{pod.name}/{launch.name}: $({name})" for name in launch.unresolved]
        for line in missing:
            self.progress(f"unresolved reference {line}")
        if not missing:
            self.progress(f"every $(VAR) of every container of the {len(self.grove)} pods expands")

    def _launches(self, pod: GrovePod, ip: str) -> tuple[dict[str, ContainerLaunch], dict[str, Any]]:
        spec = dict(pod.pod_spec)
        spec["containers"] = [dict(self.rewrite(pod, c)) for c in spec.get("containers") or ()]
        spec["initContainers"] = [dict(self.rewrite(pod, c)) for c in spec.get("initContainers") or ()]
        assert self.network is not None
        launches = {}
        for container in [*spec["initContainers"], *spec["containers"]]:
            launch = container_launch(
                pod, container, pod_ip=ip, host_ip=self.network.gateway, secrets=self.secrets
            )
            # the image's environment under the container's (the kubelet expands only the latter)
            launches[container["name"]] = dataclasses.replace(launch, env={**self.image_env, **launch.env})
        return launches, spec

    async def _start_when_ready(self, pod: GrovePod) -> None:
        waiting = unmet(pod.starts_after, self.ready_pods())
        while waiting:
            self._changed.clear()
            await self._changed.wait()
            waiting = unmet(pod.starts_after, self.ready_pods())
        self.progress(f"pod {pod.name}: starting")
        await self.pods[pod.name].run()

    def _pod_changed(self, pod: LocalPod) -> None:
        if pod.ready and pod.name not in self.ready_order:
            self.ready_order.append(pod.name)
            self.progress(f"pod {pod.name}: Ready after {time.monotonic() - self.started_at:.0f} s")
        elif not pod.ready and not pod.terminating:
            self.progress(f"pod {pod.name}: not Ready")
        self._changed.set()

    async def stop(self) -> None:
        """Terminate every pod (in parallel), close the Services, remove the network."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(pod.terminate() for pod in self.pods.values()), return_exceptions=True)
        for forwarder in self.forwarders.values():
            await forwarder.close()
        if self.network is not None:
            self.network.close()

    # ---- what tests and the control surface use ------------------------------------------------
    def ready_pods(self) -> list[str]:
        return [name for name, pod in self.pods.items() if pod.ready]

    def all_ready(self) -> bool:
        return bool(self.pods) and all(pod.ready for pod in self.pods.values())

    def endpoints(self, service: Mapping[str, Any]) -> list[Endpoint]:
        """The Ready pods the Service's selector matches."""
        selector: Mapping[str, str] = service["spec"].get("selector") or {}
        found = []
        for pod in self.grove:
            local = self.pods.get(pod.name)
            if local is None or not local.ready or not selector or not selector.items() <= pod.labels.items():
                continue
            ports = [p for c in pod.pod_spec.get("containers") or () for p in c.get("ports") or ()]
            found.append(Endpoint(local.net.ip, ports))
        return found

    def _service(self, service: str) -> Mapping[str, Any]:
        doc = next((s for s in self.services if s["metadata"]["name"] == service), None)
        if doc is None:
            raise RunError(f"no Service {service!r} in the documents")
        return doc

    def service_url(self, service: str) -> str:
        """``http://<ClusterIP>:<port>`` of Service ``service`` (its first port), as the pods and the node reach it."""
        doc = self._service(service)
        return f"http://{self.service_addresses[service]}:{doc['spec']['ports'][0]['port']}"

    async def forward(
        self, service: str, *, address: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None
    ) -> int:
        """Serve Service ``service`` on ``address:port`` too (the entry on 127.0.0.1), or on ``sock``, a
        listening socket bound elsewhere (a run in a user namespace); returns the port."""
        doc = self._service(service)
        forwarder = ServiceForwarder(doc, functools.partial(self.endpoints, doc))
        (bound,) = (await forwarder.listen(address, port=port, sock=sock))[:1]
        self.forwarders[f"{service}@{address}"] = forwarder
        return bound

    async def wait_all_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.all_ready():
            if time.monotonic() > deadline:
                waiting = [n for n, p in self.pods.items() if not p.ready]
                raise RunError(f"pods not Ready after {timeout:.0f} s: {', '.join(waiting)}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 1.0)

    def kill(self, pod: str) -> None:
        """Crash every container of ``pod`` (SIGKILL); the kubelet side restarts them."""
        self._pod(pod).kill()

    def partition(self, pod: str, *, cut: bool = True) -> None:
        """Cut ``pod`` off the pod network, or heal it."""
        self._pod(pod)
        assert self.network is not None
        self.network.partition(pod, cut=cut)

    def _pod(self, name: str) -> LocalPod:
        if name not in self.pods:
            raise RunError(f"no pod {name!r} runs here (pods: {', '.join(self.pods)})")
        return self.pods[name]

    def status(self) -> list[dict[str, Any]]:
        """One line of state per pod, as ``kubectl get pods`` would show it."""
        return [
            {"pod": name, "ip": pod.net.ip, "ready": pod.ready,
             "restarts": sum(c.restarts for c in pod.containers),
             "containers": {c.name: {"ready": c.ready, "restarts": c.restarts, "last_exit": c.last_exit,
                                      "probe": c.last_probe_failure} for c in pod.containers}}
            for name, pod in self.pods.items()
        ] + [{"pod": name, "skipped": why} for name, why in self.skipped.items()]  # fmt: skip


RUNTIME_SETTINGS = (TRACE_STORE_ENV, NIXL_DELAY_ENV)
"""The ``GROVE_*`` variables the runtime reads as its own settings (``GROVE_TRACE_STORE_TRACES=50
grove-pipelines run ...`` keeps traces for the console page). Every other ``GROVE_*`` name is Grove's
pod identity or a credential (``GROVE_ROUTER_API_KEY``), which a pod gets from its own spec only."""


def image_env() -> dict[str, str]:
    """The "image" environment: this machine's, without anything that would make a pod see a cluster or
    another run (``GROVE_*`` but the runtime's settings, ``GP_*``, ``KUBERNETES_*``)."""
    return {
        k: v
        for k, v in os.environ.items()
        if k in RUNTIME_SETTINGS or not k.startswith(("GROVE_", "GP_", "KUBERNETES_", "KUBECONFIG"))
    }
