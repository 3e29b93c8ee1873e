"""Typed launcher for ``vllm serve``: aggregated workers and NixlConnector prefill/decode pairs.

The command line and environment follow what was verified on CPU-only machines (the project's
vllm-on-cpu notes, sections 4 and 5a): eager mode, a small KV cache, a fixed seed, and, in local mode,
every socket on loopback (``VLLM_HOST_IP``, ``UCX_NET_DEVICES=lo``, the NIXL side channel on its own
port per instance) with each instance's OpenMP threads bound to its own core.

Example (sync)::

    with start_pd_pair(Path(".cache/tiny-model"), log_dir=Path(".cache/logs")) as pair:
        print(pair.prefill.url, pair.decode.url)

Example (asyncio)::

    worker = VLLMProcess(VLLMConfig(model=path), log_dir=logs)
    await worker.astart()           # returns once /health answers
    ...
    await worker.astop()
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from grove_pipelines.spec.tracing import OTLPTarget, vllm_tracing_env
from grove_pipelines.spec.vllm import KV_LOAD_FAILURE_POLICY, EngineRole, VLLMServe
from runtime.engines.supervisor import ManagedProcess, ProgressCallback, free_port

__all__ = [
    "OFFLINE_ENV",
    "VLLM_PROGRAM",
    "PDPair",
    "VLLMConfig",
    "VLLMProcess",
    "start_pd_pair",
    "start_together",
]

VLLM_PROGRAM = (sys.executable, "-m", "vllm.entrypoints.cli.main")
"""The installed vLLM's ``vllm`` command, run with this interpreter."""
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
}  # fmt: skip
"""No hub look-ups or usage reports: this machine serves the models it has."""


class VLLMConfig(BaseModel):
    """One ``vllm serve`` instance. Ports left at 0 are picked free when the process starts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Path
    served_model_name: str = "tiny"
    role: EngineRole = "aggregated"
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    side_channel_port: int = Field(
        default=0, ge=0, le=65535, description="NIXL handshake port (prefill/decode only)"
    )
    loopback: bool = Field(
        True, description="keep every socket of the instance (engine, NIXL, UCX) on 127.0.0.1"
    )
    cpu_bind: str | None = Field(
        None, description="VLLM_CPU_OMP_THREADS_BIND, e.g. '0' or '1'; None: vLLM's auto"
    )
    max_model_len: int = 2048
    kv_cache_bytes: int = Field(default=64 * 2**20, gt=0)
    max_num_seqs: int | None = None
    seed: int = 0
    enforce_eager: bool = True
    kv_load_failure_policy: Literal["recompute", "fail"] = KV_LOAD_FAILURE_POLICY
    tracing: OTLPTarget | None = None
    """Where vLLM exports its own spans (``--otlp-traces-endpoint``); None: it exports none."""
    shutdown_timeout: int | None = Field(default=None, ge=0)
    """Seconds its requests in flight get after SIGTERM (the compiled pods': ``VLLM_DRAIN_S``); None: abort them."""
    extra_args: tuple[str, ...] = ()
    extra_env: dict[str, str] = Field(default_factory=dict)

    def serve(self, port: int) -> VLLMServe:
        """The shared ``vllm serve`` arguments (the compiled pods use the same definition)."""
        return VLLMServe(
            model=str(self.model), served_model_name=self.served_model_name, role=self.role,
            host=self.host, port=port, max_model_len=self.max_model_len,
            kv_load_failure_policy=self.kv_load_failure_policy, kv_buffer_device="cpu", seed=self.seed,
            kv_cache_bytes=self.kv_cache_bytes, enforce_eager=self.enforce_eager, max_num_seqs=self.max_num_seqs,
            otlp_traces_endpoint=self.tracing.endpoint if self.tracing is not None else None,
            shutdown_timeout=self.shutdown_timeout, extra_args=self.extra_args,
        )  # fmt: skip

    def command(self, port: int) -> list[str]:
        """The exact argv of the server listening on ``port``."""
        return [*VLLM_PROGRAM, *self.serve(port).args()]

    def environment(self, side_channel_port: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of the server: ``base`` (default: ours) plus the offline and loopback settings."""
        env = dict(os.environ if base is None else base)
        env.update(OFFLINE_ENV)
        if self.loopback:
            env.update(
                VLLM_HOST_IP="127.0.0.1", UCX_NET_DEVICES="lo", VLLM_NIXL_SIDE_CHANNEL_HOST="127.0.0.1"
            )
        if self.role != "aggregated":
            env["VLLM_NIXL_SIDE_CHANNEL_PORT"] = str(side_channel_port)
        if self.cpu_bind is not None:
            env["VLLM_CPU_OMP_THREADS_BIND"] = self.cpu_bind
        if self.tracing is not None:
            env.update(vllm_tracing_env(self.tracing, self.role))
        env.update(self.extra_env)
        return env


class VLLMProcess:
    """A supervised ``vllm serve``: start, wait for ``/health`` with progress, stop its process group."""

    def __init__(self, config: VLLMConfig, *, log_dir: Path, name: str | None = None) -> None:
        self.config = config
        self.name = name or f"vllm-{config.role}"
        self.log_dir = Path(log_dir)
        self.port = config.port
        self.side_channel_port = config.side_channel_port
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Base URL of the OpenAI server, e.g. ``http://127.0.0.1:40123`` (valid after :meth:`launch`)."""
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"http://{host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the server's stdout and stderr go."""
        return self.log_dir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        """PID of ``vllm serve`` (the process-group leader)."""
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        """True while the server process is alive (not necessarily ready)."""
        return self._proc is not None and self._proc.running

    def launch(self) -> None:
        """Start the process without waiting (use :meth:`wait_ready` next).

        Ports left at 0 are picked free on the first launch and kept on a restart, so the worker's URL
        does not change.
        """
        if self.running:
            return
        self.port = self.port or free_port()
        if self.config.role != "aggregated":
            self.side_channel_port = self.side_channel_port or free_port()
        self._proc = ManagedProcess(
            self.config.command(self.port),
            env=self.config.environment(self.side_channel_port),
            log_path=self.log_path,
            name=self.name,
        )
        self._proc.start()

    def wait_ready(self, timeout: float = 300.0, progress: ProgressCallback | None = None) -> float:
        """Block until ``/health`` answers 200; returns the startup time in seconds."""
        if self._proc is None:
            self.launch()
        assert self._proc is not None
        return self._proc.wait_http_ok(f"{self.url}/health", timeout=timeout, progress=progress)

    def start(self, timeout: float = 300.0, progress: ProgressCallback | None = None) -> float:
        """:meth:`launch` then :meth:`wait_ready`; on failure the process is stopped before raising."""
        self.launch()
        try:
            return self.wait_ready(timeout, progress)
        except BaseException:
            self.stop()
            raise

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the server and its engine processes; SIGKILL after ``grace`` seconds."""
        if self._proc is not None:
            self._proc.stop(grace)

    def kill(self) -> None:
        """SIGKILL the server and its engine processes at once (a crash, for failure tests)."""
        if self._proc is not None:
            self._proc.kill()

    def last_log_line(self) -> str:
        """The server's last log line."""
        return self._proc.last_log_line() if self._proc else ""

    async def astart(self, timeout: float = 300.0, progress: ProgressCallback | None = None) -> float:
        """:meth:`start` without blocking the event loop."""
        return await asyncio.to_thread(self.start, timeout, progress)

    async def astop(self, grace: float = 20.0) -> None:
        """:meth:`stop` without blocking the event loop."""
        await asyncio.to_thread(self.stop, grace)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_together(
    procs: Sequence[VLLMProcess], timeout: float, progress: ProgressCallback | None = None
) -> None:
    """Launch every worker not yet running at once (they load in parallel), then wait until each
    answers ``/health``; if any fails to, stop them all and re-raise."""
    try:
        for proc in procs:
            if not proc.running:
                proc.launch()
        for proc in procs:
            proc.wait_ready(timeout, progress)
    except BaseException:
        for proc in procs:
            proc.stop()
        raise


@dataclass
class PDPair:
    """A NixlConnector prefill (kv_producer) and decode (kv_consumer) worker serving the same model."""

    prefill: VLLMProcess
    decode: VLLMProcess

    def start(self, timeout: float = 420.0, progress: ProgressCallback | None = None) -> None:
        """Launch both at once (they load in parallel) and wait until both answer ``/health``."""
        start_together((self.prefill, self.decode), timeout, progress)

    def stop(self, grace: float = 20.0) -> None:
        """Stop both workers."""
        for proc in (self.prefill, self.decode):
            proc.stop(grace)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_pd_pair(
    model: Path,
    *,
    log_dir: Path,
    served_model_name: str = "tiny",
    timeout: float = 420.0,
    progress: ProgressCallback | None = None,
    **options: object,
) -> PDPair:
    """Start a prefill and a decode worker together, bound to cores 0 and 1; return once both are ready.

    ``options`` are further :class:`VLLMConfig` fields applied to both (e.g. ``kv_cache_bytes``).
    """
    common = {"model": model, "served_model_name": served_model_name, **options}
    prefill = VLLMConfig.model_validate({**common, "role": "prefill", "cpu_bind": "0"})
    decode = VLLMConfig.model_validate({**common, "role": "decode", "cpu_bind": "1"})
    pair = PDPair(prefill=VLLMProcess(prefill, log_dir=log_dir), decode=VLLMProcess(decode, log_dir=log_dir))
    pair.start(timeout, progress)
    return pair
