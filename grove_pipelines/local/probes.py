"""Container probes as the kubelet runs them: httpGet, tcpSocket and exec, from the node to the pod IP.

Semantics (Kubernetes ``pkg/kubelet/prober``; field defaults from the Pod API): ``initialDelaySeconds``
0, ``periodSeconds`` 10, ``timeoutSeconds`` 1, ``successThreshold`` 1, ``failureThreshold`` 3. An
httpGet succeeds on a status from 200 to 399 and is sent to ``<scheme>://<podIP>:<port><path>`` from
the node (not from inside the pod), so a server bound to 127.0.0.1 fails it; a named port is the
container port of that name. A tcpSocket succeeds when a connection opens; an exec probe when the
command exits 0 inside the container (its namespace and environment).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["ProbeSpec", "probe_once", "resolve_port"]


@dataclass(frozen=True)
class ProbeSpec:
    """A probe with the Pod API's defaults filled in."""

    action: Mapping[str, Any]
    kind: str
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def parse(cls, probe: Mapping[str, Any]) -> ProbeSpec:
        kind = next((k for k in ("httpGet", "tcpSocket", "exec", "grpc") if k in probe), "")
        return cls(
            action=probe.get(kind) or {},
            kind=kind,
            initial_delay=float(probe.get("initialDelaySeconds", 0)),
            period=float(probe.get("periodSeconds", 10)),
            timeout=float(probe.get("timeoutSeconds", 1)),
            success_threshold=int(probe.get("successThreshold", 1)),
            failure_threshold=int(probe.get("failureThreshold", 3)),
        )


def resolve_port(port: int | str, container_ports: Sequence[Mapping[str, Any]]) -> int:
    """A probe or Service port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for entry in container_ports:
        if entry.get("name") == port:
            return int(entry["containerPort"])
    raise ValueError(f"no container port named {port!r}")


async def probe_once(
    spec: ProbeSpec,
    *,
    pod_ip: str,
    container_ports: Sequence[Mapping[str, Any]],
    exec_argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[bool, str]:
    """One probe attempt: (success, why) — ``why`` names the failure as the kubelet's events would."""
    try:
        if spec.kind == "httpGet":
            action = spec.action
            port = resolve_port(action.get("port", 80), container_ports)
            host = action.get("host") or pod_ip
            scheme = str(action.get("scheme", "HTTP")).lower()
            headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or ()}
            url = f"{scheme}://{host}:{port}{action.get('path', '/')}"
            async with httpx.AsyncClient(timeout=spec.timeout, verify=False, trust_env=False) as client:
                response = await client.get(url, headers=headers)
            ok = 200 <= response.status_code < 400
            return ok, f"HTTP probe failed with statuscode: {response.status_code}" if not ok else "ok"
        if spec.kind == "tcpSocket":
            port = resolve_port(spec.action.get("port", 0), container_ports)
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(spec.action.get("host") or pod_ip, port), spec.timeout
            )
            writer.close()
            return True, "ok"
        if spec.kind == "exec":
            argv = [*(exec_argv or ()), *spec.action.get("command", ())]
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=dict(env or {}),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                code = await asyncio.wait_for(proc.wait(), spec.timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return False, f"command timed out after {spec.timeout:g}s"
            return code == 0, "ok" if code == 0 else f"command exited with {code}"
        return False, f"probe type {spec.kind or 'unknown'} is not supported here"
    except (httpx.HTTPError, OSError, TimeoutError, ValueError) as exc:
        return False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
