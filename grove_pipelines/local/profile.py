"""The local profile: the only changes the run makes to the compiled containers, and it prints them.

Images become this machine's environment: the runtime image is this package (``grove-pipelines``
run by this interpreter), the vLLM image is the installed vLLM. vLLM serves the local model with
tensor parallel 1 and the CPU-safe flags the tests use (eager, a CPU KV buffer, a fixed KV cache and
seed), with its OpenMP threads bound to the cores the run maps the pod's GPU requests to. The entry
takes no API key (the run serves this machine only); stage servers still check the stage token, from
a Secret the run makes as deploy would. An OTLP endpoint in this machine's ``OTEL_*`` variables (which
every pod sees) gives vLLM ``--otlp-traces-endpoint`` when the manifest has none. Everything else (ports, probes, environment, names,
``startsAfter``) runs as compiled. A multi-node vLLM group
cannot run here: its pods are reported and left out.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grove_pipelines.spec.server_auth import API_KEYS_ENV
from grove_pipelines.spec.tracing import otlp_traces_target, vllm_tracing_env
from grove_pipelines.spec.vllm import VLLMServe
from runtime.engines.vllm import OFFLINE_ENV, VLLM_PROGRAM

__all__ = ["CannotRunHere", "LocalProfile"]

_CPU_KV_CACHE_BYTES = 64 * 2**20
_GROVE_PIPELINES = (sys.executable, "-m", "grove_pipelines.cli.main")


class CannotRunHere(Exception):
    """A pod this machine cannot run (the message says why)."""


@dataclass
class LocalProfile:
    """Rewrites containers to run here; :meth:`describe` is the printed list of differences."""

    model: Path
    max_model_len: int
    cores: list[int] = field(default_factory=lambda: sorted(os.sched_getaffinity(0)))
    probe_slack: int = 4
    """Probe timeouts are multiplied by this: one machine runs every pod on a few shared cores, where a
    node would give each its own, and a starved answer is not a dead one."""
    _next_core: int = 0

    def describe(self) -> list[str]:
        return [
            f"image {'<runtime>'} -> this package: {' '.join(_GROVE_PIPELINES[1:])} (python {sys.version.split()[0]})",
            f"image <vllm> -> the installed vLLM: {' '.join(VLLM_PROGRAM[1:])}",
            f"vLLM model -> {self.model}; --tensor-parallel-size 1; --max-model-len <= {self.max_model_len}",
            f"vLLM CPU flags: --enforce-eager --seed 0 --kv-cache-memory-bytes {_CPU_KV_CACHE_BYTES} kv_buffer_device=cpu",
            f"GPU requests -> CPU cores {self.cores} (VLLM_CPU_OMP_THREADS_BIND, one core per GPU, round-robin)",
            "multi-node vLLM groups: not run here (expansion and addresses are still checked)",
            f"entry: no API key ({API_KEYS_ENV} dropped; the run serves this machine); the stage token is checked",
            f"probes: timeoutSeconds x{self.probe_slack} (every pod shares this machine's cores)",
            "not enforced here: securityContext, volumes (one shared filesystem), NetworkPolicies, resource limits",
        ]

    def apply(self, container: Mapping[str, Any], *, multi_node: bool) -> dict[str, Any]:
        """The container as it runs here (a copy); raises :class:`CannotRunHere`."""
        out = copy.deepcopy(dict(container))
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if out.get(kind):
                probe = out[kind]
                probe["timeoutSeconds"] = int(probe.get("timeoutSeconds", 1)) * self.probe_slack
        argv = list(out.get("command") or ())
        if not argv:
            return out
        if argv[0] == "grove-pipelines":
            out["command"] = [*_GROVE_PIPELINES, *argv[1:]]
            out["env"] = [e for e in out.get("env") or () if e.get("name") != API_KEYS_ENV] or None
        elif argv[0] == "vllm" or (argv[:2] == ["sh", "-c"] and "vllm serve" in " ".join(argv)):
            if multi_node or argv[0] != "vllm":
                raise CannotRunHere("a multi-node vLLM group needs one GPU node per pod")
            serve = self._vllm_serve(argv[1:])
            env = [*(out.get("env") or ())]
            target = otlp_traces_target(os.environ)  # the image's environment: this machine's
            if serve.otlp_traces_endpoint is None and target is not None:
                serve = serve.model_copy(update={"otlp_traces_endpoint": target.endpoint})
                env += [{"name": k, "value": v} for k, v in vllm_tracing_env(target, serve.role).items()]
            out["command"] = [*VLLM_PROGRAM, *serve.args()]
            gpus = int(((out.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", 1))
            env += [{"name": k, "value": v} for k, v in OFFLINE_ENV.items()]
            env.append({"name": "VLLM_CPU_OMP_THREADS_BIND", "value": self._take_cores(gpus)})
            out["env"] = env
        return out

    def _vllm_serve(self, args: list[str]) -> VLLMServe:
        serve = VLLMServe.parse(args)
        local = serve.model_copy(
            update={
                "model": str(self.model.resolve()), "tensor_parallel": 1,
                "max_model_len": min(serve.max_model_len or self.max_model_len, self.max_model_len),
                "kv_buffer_device": "cpu" if serve.role != "aggregated" else None, "seed": 0,
                "kv_cache_bytes": _CPU_KV_CACHE_BYTES, "enforce_eager": True,
            }
        )  # fmt: skip
        return local

    def _take_cores(self, count: int) -> str:
        taken = [
            self.cores[(self._next_core + n) % len(self.cores)]
            for n in range(max(1, min(count, len(self.cores))))
        ]
        self._next_core += len(taken)
        return ",".join(str(c) for c in taken)
