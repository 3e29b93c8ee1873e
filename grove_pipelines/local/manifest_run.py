"""`grove-pipelines run` on the compiled manifest: the documents `deploy` applies, run on this machine.

It prints the local profile (the only differences from what `deploy` applies), starts the pods in
``startsAfter`` order with progress, forwards the entry Service to ``host:port`` (127.0.0.1:8000 by
default) and prints the endpoint and a curl line once every pod is Ready. Lines on stdin inject
faults: ``kill POD`` (crash its containers), ``partition POD`` / ``heal POD`` (cut it off the pod
network and back), ``pods`` (the state of every pod, one JSON line). SIGINT or SIGTERM stops every
pod (preStop, SIGTERM, grace) and removes every namespace, link and file the run made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from grove_pipelines.errors import RunError
from grove_pipelines.grove.labels import ROLE_LABEL
from grove_pipelines.local.cluster import LocalCluster
from grove_pipelines.local.identity import grove_pods
from grove_pipelines.local.netns import sweep
from grove_pipelines.local.plan import example_body, model_max_len
from grove_pipelines.local.profile import LocalProfile

__all__ = ["entry_service", "run_documents"]

Progress = Callable[[str], None]
_READY_TIMEOUT = 1800.0


def entry_service(documents: Sequence[Mapping[str, Any]]) -> str:
    """The Service in front of the entry clique (the one labelled ``grove-pipelines.io/role: entry``):
    the one whose selector matches the labels Grove gives its pods, in every replica of the PodCliqueSet."""
    pcs = next(d for d in documents if d["kind"] == "PodCliqueSet")
    entry = [pod.labels for pod in grove_pods(pcs) if pod.labels.get(ROLE_LABEL) == "entry"]
    for doc in documents:
        selector = doc.get("spec", {}).get("selector") or {} if doc["kind"] == "Service" else {}
        if entry and selector and all(selector.items() <= labels.items() for labels in entry):
            return str(doc["metadata"]["name"])
    raise RunError(f"the documents have no Service in front of an entry clique (label {ROLE_LABEL}: entry)")


def run_documents(
    documents: Sequence[Mapping[str, Any]], *, model: Path, host: str, port: int, log_dir: Path,
    progress: Progress, announce: Progress, listener: socket.socket | None = None,
) -> None:  # fmt: skip
    """Run the documents until SIGINT or SIGTERM; leave nothing behind.

    ``listener``: the entry's socket, already bound to ``host:port`` (a run in a user namespace).
    """
    for leftover in sweep():
        progress(f"removed {leftover}, left by a run that was killed")
    profile = LocalProfile(model=model, max_model_len=model_max_len(model))
    progress("local profile (the only differences from what deploy applies):")
    for line in profile.describe():
        progress(f"  {line}")
    serving = _serve(
        documents, profile, host=host, port=port, log_dir=log_dir, progress=progress, announce=announce,
        listener=listener,
    )  # fmt: skip
    asyncio.run(serving)


async def _serve(
    documents: Sequence[Mapping[str, Any]], profile: LocalProfile, *, host: str, port: int, log_dir: Path,
    progress: Progress, announce: Progress, listener: socket.socket | None,
) -> None:  # fmt: skip
    cluster = LocalCluster(
        documents, rewrite=lambda pod, c: profile.apply(c, multi_node=pod.pcsg is not None), log_dir=log_dir,
        progress=progress,
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    entry = entry_service(documents)
    try:
        try:
            bound = await cluster.forward(entry, address=host, port=port, sock=listener)
        except OSError as exc:
            raise RunError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        await cluster.start()
        if cluster.skipped:
            raise RunError(f"{len(cluster.skipped)} pod(s) cannot run on this machine (see above)")
        progress(f"{len(cluster.pods)} pods starting in startsAfter order; logs in {log_dir}")
        _read_commands(loop, cluster, announce)
        ready = asyncio.create_task(cluster.wait_all_ready(_READY_TIMEOUT))
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            ready.result()
            await _announce(f"http://{host}:{bound}", cluster.service_url(entry), entry, announce, progress)
            await stop.wait()
        ready.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        progress("stopping: every pod (preStop, SIGTERM, grace period), then the pod network")
        await cluster.stop()
        progress("stopped")


async def _announce(base: str, inside: str, service: str, announce: Progress, progress: Progress) -> None:
    """The endpoints on ``base`` (the user's address), listed by asking the Service at ``inside`` (its
    ClusterIP: ``base`` may be in another network namespace, a run in a user namespace's)."""
    try:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            listing = (await client.get(f"{inside}/v1/pipelines")).json()["data"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        progress(f"warning: the entry Service answers but does not list its pipelines ({type(exc).__name__})")
        return
    for pipeline in listing:
        endpoint = f"{base}{pipeline['path']}"
        body = json.dumps(example_body(pipeline.get("input_schema") or {}))
        announce(f"pipeline {pipeline['name']!r} is serving on {endpoint} (Service {service})")
        announce(f"try: curl -s {endpoint} -H 'Content-Type: application/json' -d '{body}'")
    progress("commands on stdin: kill POD | partition POD | heal POD | pods; Ctrl-C stops everything")


def _read_commands(loop: asyncio.AbstractEventLoop, cluster: LocalCluster, announce: Progress) -> None:
    """Fault injection from stdin lines, applied on the event loop."""

    def apply(line: str) -> None:
        verb, _, pod = line.strip().partition(" ")
        try:
            if verb == "kill":
                cluster.kill(pod.strip())
            elif verb in ("partition", "heal"):
                cluster.partition(pod.strip(), cut=verb == "partition")
            elif verb == "pods":
                announce(json.dumps(cluster.status()))
                return
            elif verb:
                raise RunError(f"unknown command {verb!r} (kill POD | partition POD | heal POD | pods)")
            else:
                return
            announce(f"{verb} {pod.strip()}: done")
        except RunError as exc:
            announce(f"error: {exc}")

    def read() -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in sys.stdin:
                loop.call_soon_threadsafe(apply, line)

    threading.Thread(target=read, daemon=True, name="run-commands").start()
