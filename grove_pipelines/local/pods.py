"""One pod's containers, run as the kubelet runs them, as processes in the pod's network namespace.

* Init containers in order: a native sidecar (``restartPolicy: Always``) is started and the next one
  waits until it has started (its startup probe passed); the others run to completion.
* Main containers start together. Probes (:mod:`grove_pipelines.local.probes`): the startup probe
  first, then readiness and liveness; a failed startup or liveness probe restarts the container.
* Restarts (``restartPolicy`` Always, the Grove default): at once after the first exit, then after
  10 s, doubling to 300 s, reset after 10 minutes of running (the kubelet's crash-loop back-off).
* Termination: ``preStop`` then SIGTERM, SIGKILL when ``terminationGracePeriodSeconds`` (default 30)
  runs out; main containers first, then sidecars in reverse order.

The pod is Ready when every main container and every sidecar is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from grove_pipelines.local.container_env import ContainerLaunch
from grove_pipelines.local.netns import PodNet
from grove_pipelines.local.probes import ProbeSpec, probe_once, resolve_port

__all__ = ["BACKOFF_MAX", "BACKOFF_START", "ContainerRun", "LocalPod"]

BACKOFF_START = 10.0
BACKOFF_MAX = 300.0
_BACKOFF_RESET = 600.0


@dataclass
class ContainerRun:
    """The state the kubelet reports for one container."""

    spec: Mapping[str, Any]
    launch: ContainerLaunch
    sidecar: bool = False
    started: bool = False
    ready: bool = False
    restarts: int = 0
    last_exit: int | None = None
    last_probe_failure: str = ""
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.launch.name


class LocalPod:
    """A pod: its containers, their probes and restarts; ``on_change`` is called when readiness moves."""

    def __init__(
        self, name: str, net: PodNet, spec: Mapping[str, Any], launches: Mapping[str, ContainerLaunch], *,
        log_dir: Path, on_change: Callable[[LocalPod], None] | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.net = net
        self.spec = spec
        self.log_dir = log_dir / name
        self.on_change = on_change
        self.grace = float(spec.get("terminationGracePeriodSeconds", 30))
        self.restart_policy = str(spec.get("restartPolicy") or "Always")
        self.init = [
            ContainerRun(c, launches[c["name"]], sidecar=c.get("restartPolicy") == "Always")
            for c in spec.get("initContainers") or ()
        ]
        self.main = [ContainerRun(c, launches[c["name"]]) for c in spec.get("containers") or ()]
        self.terminating = False
        self._tasks: list[asyncio.Task[None]] = []
        self._was_ready = False

    @property
    def containers(self) -> list[ContainerRun]:
        return [*self.init, *self.main]

    @property
    def ready(self) -> bool:
        """Every main container and every native sidecar is ready."""
        running = [c for c in self.containers if c.sidecar] + self.main
        return not self.terminating and bool(running) and all(c.ready for c in running)

    def _changed(self) -> None:
        if self.ready != self._was_ready:
            self._was_ready = self.ready
            if self.on_change is not None:
                self.on_change(self)

    async def run(self) -> None:
        """Run init containers in order, then the main containers; returns once the main ones are launched."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for container in self.init:
            if container.sidecar:
                self._tasks.append(asyncio.create_task(self._supervise(container)))
                while not container.started and not self.terminating:
                    await asyncio.sleep(0.2)
            else:
                while not self.terminating and await self._run_once(container) != 0:
                    await asyncio.sleep(BACKOFF_START)
        for container in self.main:
            self._tasks.append(asyncio.create_task(self._supervise(container)))

    def kill(self) -> None:
        """SIGKILL every container process (a crash: the kubelet restarts them)."""
        for container in self.containers:
            _signal(container.process, signal.SIGKILL)

    async def terminate(self) -> None:
        """preStop, SIGTERM and the grace period: main containers first, then sidecars in reverse."""
        self.terminating = True
        self._changed()
        deadline = time.monotonic() + self.grace
        await asyncio.gather(*(self._stop(c, deadline) for c in self.main))
        for container in reversed([c for c in self.init if c.sidecar]):
            await self._stop(container, max(deadline, time.monotonic() + 2))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _stop(self, container: ContainerRun, deadline: float) -> None:
        proc = container.process
        if proc is None or proc.returncode is not None:
            return
        pre_stop = ((container.spec.get("lifecycle") or {}).get("preStop")) or None
        if pre_stop:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._pre_stop(container, pre_stop), max(0.1, deadline - time.monotonic())
                )
        _signal(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            _signal(proc, signal.SIGKILL)
            await proc.wait()

    async def _pre_stop(self, container: ContainerRun, hook: Mapping[str, Any]) -> None:
        if "sleep" in hook:
            await asyncio.sleep(float(hook["sleep"].get("seconds", 0)))
        elif "exec" in hook:
            proc = await asyncio.create_subprocess_exec(
                *self.net.exec_argv(list(hook["exec"].get("command", ()))), env=container.launch.env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await proc.wait()
        elif "httpGet" in hook:
            action = hook["httpGet"]
            port = resolve_port(action.get("port", 80), container.spec.get("ports") or ())
            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient(trust_env=False) as client:
                    await client.get(f"http://{self.net.ip}:{port}{action.get('path', '/')}")

    async def _start(self, container: ContainerRun) -> asyncio.subprocess.Process:
        log = (self.log_dir / f"{container.name}.log").open("ab")
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.net.exec_argv(container.launch.argv), env=container.launch.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        container.process = proc
        return proc

    async def _run_once(self, container: ContainerRun) -> int:
        proc = await self._start(container)
        container.last_exit = await proc.wait()
        return container.last_exit

    async def _supervise(self, container: ContainerRun) -> None:
        """Start, probe and restart one long-running container until the pod terminates."""
        backoff = 0.0
        policy = "Always" if container.sidecar else self.restart_policy
        while not self.terminating:
            began = time.monotonic()
            proc = await self._start(container)
            probes = asyncio.create_task(self._probe(container, proc))
            container.last_exit = await proc.wait()
            probes.cancel()
            await asyncio.gather(probes, return_exceptions=True)
            container.started = container.ready = False
            self._changed()
            if self.terminating or policy == "Never" or (policy == "OnFailure" and container.last_exit == 0):
                return
            container.restarts += 1
            if time.monotonic() - began > _BACKOFF_RESET:
                backoff = 0.0
            await asyncio.sleep(backoff)
            backoff = min(max(backoff * 2, BACKOFF_START), BACKOFF_MAX)

    async def _probe(self, container: ContainerRun, proc: asyncio.subprocess.Process) -> None:
        spec = container.spec
        startup = ProbeSpec.parse(spec["startupProbe"]) if spec.get("startupProbe") else None
        if startup is not None and not await self._until_started(container, startup):
            await self._restart(container, proc)
            return
        container.started = True
        loops = []
        if spec.get("readinessProbe"):
            loops.append(self._readiness(container, ProbeSpec.parse(spec["readinessProbe"])))
        else:
            container.ready = True
            self._changed()
        if spec.get("livenessProbe"):
            loops.append(self._liveness(container, ProbeSpec.parse(spec["livenessProbe"]), proc))
        await asyncio.gather(*loops)

    @staticmethod
    async def _next_tick(started: float, probe: ProbeSpec) -> None:
        """Wait for the next period (the kubelet's ticker: a probe slower than the period delays the next
        one and never overlaps it)."""
        await asyncio.sleep(max(0.0, probe.period - (time.monotonic() - started)))

    async def _check(self, container: ContainerRun, probe: ProbeSpec) -> bool:
        ok, why = await probe_once(
            probe, pod_ip=self.net.ip, container_ports=container.spec.get("ports") or (),
            exec_argv=self.net.exec_argv([]), env=container.launch.env,
        )  # fmt: skip
        if not ok:
            container.last_probe_failure = why
        return ok

    async def _until_started(self, container: ContainerRun, probe: ProbeSpec) -> bool:
        """The startup probe every period: True on a success, False after ``failureThreshold`` failures."""
        await asyncio.sleep(probe.initial_delay)
        for _ in range(probe.failure_threshold):
            started = time.monotonic()
            if await self._check(container, probe):
                return True
            await self._next_tick(started, probe)
        return False

    async def _readiness(self, container: ContainerRun, probe: ProbeSpec) -> None:
        await asyncio.sleep(probe.initial_delay)
        successes = failures = 0
        while True:
            started = time.monotonic()
            if await self._check(container, probe):
                successes, failures = successes + 1, 0
                if successes >= probe.success_threshold:
                    container.ready = True
            else:
                successes, failures = 0, failures + 1
                if failures >= probe.failure_threshold:
                    container.ready = False
            self._changed()
            await self._next_tick(started, probe)

    async def _liveness(
        self, container: ContainerRun, probe: ProbeSpec, proc: asyncio.subprocess.Process
    ) -> None:
        await asyncio.sleep(probe.initial_delay)
        failures = 0
        while True:
            started = time.monotonic()
            failures = 0 if await self._check(container, probe) else failures + 1
            if failures >= probe.failure_threshold:
                await self._restart(container, proc)
                return
            await self._next_tick(started, probe)

    async def _restart(self, container: ContainerRun, proc: asyncio.subprocess.Process) -> None:
        """A failed startup or liveness probe: the kubelet kills the container (with its grace) to restart it."""
        container.ready = False
        self._changed()
        await self._stop(container, time.monotonic() + self.grace)


def _signal(proc: asyncio.subprocess.Process | None, sig: int) -> None:
    """Signal the container's process group (vLLM forks engine and worker processes)."""
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
