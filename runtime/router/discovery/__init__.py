"""Keeps the router's pools in step with the cluster: static URLs, Grove cliques, or Kubernetes selectors.

* ``static``: the URLs given on the command line; nothing runs.
* ``kubernetes``: a list+watch per role on ``--prefill-selector`` / ``--decode-selector`` /
  ``--worker-selector`` (ready pods only).
* ``grove``: the pods of ``--prefill-clique`` / ``--decode-clique`` / ``--worker-clique`` (or the
  leader cliques of ``--*-group``) in this pod's PodCliqueSet replica, found from the ``GROVE_*``
  variables: through the Kubernetes API when the pod may list pods, else by probing the pods' DNS
  names under the headless service (``use_api``: auto, yes, no).

Membership changes are applied to the running router without a restart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from grove_pipelines.spec.router_flags import DISCOVERY, Pool, clique_flag, group_flag, selector_flag
from runtime.errors import DiscoveryError, RouterConfigError
from runtime.router.config import DiscoveryConfig
from runtime.router.discovery.dns import DnsProber, Resolver
from runtime.router.discovery.grove import CliqueTarget, GroveEnv
from runtime.router.discovery.kube import PodWatcher, api_client

__all__ = ["Discovery", "grove_targets"]

log = logging.getLogger("grove.router.discovery")

_ROLES: tuple[Pool, ...] = ("prefill", "decode", "worker")
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def grove_targets(config: DiscoveryConfig) -> list[CliqueTarget]:
    """The clique of each role named in the configuration.

    Raises:
        RouterConfigError: a group without its leader clique, or no clique at all.
    """
    targets = []
    for role in _ROLES:
        clique, group = getattr(config, f"{role}_clique"), getattr(config, f"{role}_group")
        if group and not clique:
            raise RouterConfigError(
                f"{group_flag(role)} needs {clique_flag(role)} (the group's leader clique)"
            )
        if clique:
            targets.append(CliqueTarget(role, clique, group))
    if not targets:
        raise RouterConfigError(
            f"{DISCOVERY} grove needs {clique_flag('prefill')} and {clique_flag('decode')}, or {clique_flag('worker')}"
        )
    return targets


class Discovery:
    """Runs the discovery sources of one router; ``set_members(role, urls)`` receives every change."""

    def __init__(
        self,
        config: DiscoveryConfig,
        set_members: Callable[[Any, list[str]], None],
        *,
        env: Mapping[str, str] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.config = config
        self._set = set_members
        self._env = os.environ if env is None else env
        self._resolver = resolver
        self._watchers: list[PodWatcher] = []
        self._probers: list[DnsProber] = []
        self.source = "static"

    async def start(self) -> None:
        """Start watching or probing; returns after the first listing (API) or probe (DNS).

        Raises:
            DiscoveryError, RouterConfigError: missing variables or flags, or the API refused when required.
        """
        cfg = self.config
        if cfg.mode == "static":
            return
        if cfg.mode == "kubernetes":
            selectors = {r: getattr(cfg, f"{r}_selector") for r in _ROLES if getattr(cfg, f"{r}_selector")}
            if not selectors:
                raise RouterConfigError(
                    f"{DISCOVERY} kubernetes needs {selector_flag('prefill')}/{selector_flag('decode')}"
                    f" or {selector_flag('worker')}"
                )
            api = api_client(cfg.api_server)
            namespace = cfg.namespace or _own_namespace(self._env)
            for role, selector in selectors.items():
                await self._watch(api, role, namespace, selector)
            self.source = "kubernetes"
            return
        env = GroveEnv.from_env(self._env)
        targets = grove_targets(cfg)
        if cfg.use_api != "no":
            try:
                api = api_client(cfg.api_server)
                namespace = cfg.namespace or env.namespace or _own_namespace(self._env)
                for target in targets:
                    await self._watch(
                        api,
                        target.role,
                        namespace,
                        target.selector(env),
                        keep=functools.partial(_pod_matches, target, env),
                    )
                self.source = "grove-api"
                return
            except Exception as exc:
                self._stop_watchers()
                if cfg.use_api == "yes":
                    raise DiscoveryError(f"cannot list pods through the Kubernetes API: {exc}") from exc
                log.warning("no Kubernetes API access (%s); discovering workers by DNS", str(exc)[:200])
        for target in targets:
            prober = DnsProber(
                name_for=functools.partial(target.dns_name, env),
                port=cfg.worker_port,
                scheme=cfg.scheme,
                on_change=functools.partial(self._set, target.role),
                interval=cfg.dns_interval,
                max_pods=cfg.dns_max_pods,
                **({"resolver": self._resolver} if self._resolver else {}),
            )
            await prober.probe()
            prober.start()
            self._probers.append(prober)
        self.source = "grove-dns"

    async def _watch(self, api: Any, role: str, namespace: str, selector: str, **kw: Any) -> None:
        watcher = PodWatcher(
            api=api,
            namespace=namespace,
            selector=selector,
            port=self.config.worker_port,
            scheme=self.config.scheme,
            on_change=functools.partial(self._set, role),
            loop=asyncio.get_running_loop(),
            watch_timeout=self.config.watch_timeout,
            **kw,
        )
        self._watchers.append(watcher)
        await asyncio.to_thread(watcher.list_now)  # fails fast when the API refuses
        watcher.start()

    def _stop_watchers(self) -> None:
        for watcher in self._watchers:
            watcher.stop()
        self._watchers.clear()

    async def stop(self) -> None:
        """Stop every watch and probe."""
        self._stop_watchers()
        for prober in self._probers:
            await prober.stop()
        self._probers.clear()


def _pod_matches(target: CliqueTarget, env: GroveEnv, pod: Any) -> bool:
    return target.matches(env, pod.metadata.labels or {})


def _own_namespace(env: Mapping[str, str]) -> str:
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    try:
        return _SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"
