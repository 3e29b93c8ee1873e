"""The containers of the cliques: pipeline server, vLLM (single- and multi-node) and router sidecar.

These command lines are the contract with the runtime (``grove-pipelines serve`` / ``router``) and
with vLLM; change them only together with the runtime.
"""

from __future__ import annotations

import json
import shlex

from grove_pipelines.grove.core import (
    Container,
    ContainerPort,
    EnvVar,
    EnvVarSource,
    HTTPGetAction,
    ObjectFieldSelector,
    Probe,
    ResourceRequirements,
    SecretKeySelector,
    TCPSocketAction,
    VolumeMount,
)
from grove_pipelines.grove.layout import Unit
from grove_pipelines.grove.names import CONTAINER_NAME_LIMIT, short_name
from grove_pipelines.spec import LLMSpec, Resources, RoleSpec
from grove_pipelines.spec.server_auth import (
    API_KEYS_ENV,
    API_KEYS_SECRET_KEY,
    STAGE_TOKEN_ENV,
    STAGE_TOKEN_SECRET_KEY,
    auth_secret_name,
)

__all__ = [
    "DIST_PORT",
    "ROUTER_BASE_PORT",
    "WORKER_PORT",
    "resources",
    "router_container",
    "server_auth_env",
    "server_container",
    "shm_mount",
    "vllm_containers",
]

WORKER_PORT = 8000
ROUTER_BASE_PORT = 9000
DIST_PORT = 29500
"""torch.distributed rendezvous port of a multi-node vLLM leader (``--master-port``)."""

_KV_ROLE = {"prefill": "kv_producer", "decode": "kv_consumer"}


def resources(res: Resources, *, gpus: int | None = None) -> ResourceRequirements | None:
    """Requests from the spec; memory and GPUs are also limits (GPUs require requests = limits)."""
    gpu_count = res.gpus if gpus is None else gpus
    requests: dict[str, int | str] = {}
    limits: dict[str, int | str] = {}
    if res.cpu is not None:
        requests["cpu"] = res.cpu
    if res.memory is not None:
        requests["memory"] = limits["memory"] = res.memory
    if gpu_count:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = gpu_count
    if not requests:
        return None
    return ResourceRequirements(requests=requests, limits=limits or None)


def _http_probe(port: int | str, *, period: int, failures: int) -> Probe:
    return Probe(
        http_get=HTTPGetAction(path="/health", port=port), period_seconds=period, failure_threshold=failures
    )


def server_container(
    *, image: str, ref: str, port: int, stage: str | None, env: list[EnvVar], res: ResourceRequirements | None
) -> Container:
    """The pipeline server (entry) or a Python stage server: ``grove-pipelines serve REF [--stage S]``."""
    command = ["grove-pipelines", "serve", ref]
    if stage is not None:
        command += ["--stage", stage]
    command += ["--port", str(port)]
    return Container(
        name="server",
        image=image,
        command=command,
        env=env or None,
        ports=[ContainerPort(name="http", container_port=port)],
        resources=res,
        readiness_probe=_http_probe("http", period=5, failures=3),
    )


def server_auth_env(pcs: str, *, api_keys: bool, stage_token: bool) -> list[EnvVar]:
    """The server's credentials from the pipeline's Secret: bearer keys (entry) and the stage token."""
    wanted = [(API_KEYS_ENV, API_KEYS_SECRET_KEY)] if api_keys else []
    wanted += [(STAGE_TOKEN_ENV, STAGE_TOKEN_SECRET_KEY)] if stage_token else []
    return [
        EnvVar(name=env, value_from=EnvVarSource(secret_key_ref=SecretKeySelector(name=auth_secret_name(pcs), key=key)))
        for env, key in wanted
    ]


def router_container(*, image: str, index: int, llm: str, units: list[Unit]) -> Container:
    """The PD router sidecar of one called LLM, listening on ``127.0.0.1:9000+index`` for its caller."""
    port = ROUTER_BASE_PORT + index
    command = ["grove-pipelines", "router", "--port", str(port), "--discovery", "grove"]
    for unit in units:
        flag = "worker" if unit.role == "serve" else unit.role
        command += [f"--{flag}-clique", unit.clique]
        if unit.group is not None:
            command += [f"--{flag}-group", unit.group]
    command += ["--worker-port", str(WORKER_PORT)]
    return Container(
        name=short_name(f"router-{llm}", CONTAINER_NAME_LIMIT),
        image=image,
        command=command,
        ports=[ContainerPort(name=f"router-{index}", container_port=port)],
        resources=ResourceRequirements(
            requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "512Mi"}
        ),
        readiness_probe=_http_probe(port, period=5, failures=3),
    )


def shm_mount() -> VolumeMount:
    """/dev/shm for vLLM (PyTorch and NCCL need more than the container default of 64 MiB)."""
    return VolumeMount(name="dshm", mount_path="/dev/shm")


def _pod_ip(name: str) -> EnvVar:
    return EnvVar(
        name=name, value_from=EnvVarSource(field_ref=ObjectFieldSelector(field_path="status.podIP"))
    )


def _vllm_args(spec: LLMSpec, role: RoleSpec) -> list[str]:
    args = [
        "vllm", "serve", spec.model,
        "--served-model-name", spec.model_name,
        "--host", "0.0.0.0", "--port", str(WORKER_PORT),
        "--tensor-parallel-size", str(role.tensor_parallel),
    ]  # fmt: skip
    if role.role in _KV_ROLE:
        config = {"kv_connector": "NixlConnector", "kv_role": _KV_ROLE[role.role]}
        args += ["--kv-transfer-config", json.dumps(config, separators=(",", ":"))]
    if spec.max_model_len is not None:
        args += ["--max-model-len", str(spec.max_model_len)]
    return args + list(role.vllm_args)


def vllm_containers(spec: LLMSpec, unit: Unit, *, image: str) -> dict[str, Container]:
    """The vLLM container of every clique of ``unit`` (one, or leader and worker), by clique name.

    Multi-node roles run vLLM's multiprocessing backend across pods: the leader (node rank 0) serves
    HTTP and hosts the rendezvous at ``<group>-<j>-<leader>-0`` on the headless Service; workers are
    ``--headless`` with rank ``GROVE_PCLQ_POD_INDEX + 1``. ``$(GROVE_*)`` appear only in command lines,
    where Kubernetes expands them in every Grove version. The leader's readiness is the rendezvous
    port (workers start after it is Ready, and its /health only answers once the workers joined).
    """
    role = unit.spec
    assert role is not None
    env = [EnvVar(name=k, value=v) for k, v in spec.env.items()]
    if role.role in _KV_ROLE:  # NIXL's handshake address: the pod, not the default "localhost"
        env.append(_pod_ip("VLLM_NIXL_SIDE_CHANNEL_HOST"))
    if unit.group is not None:  # the address other nodes reach this one on
        env.append(_pod_ip("VLLM_HOST_IP"))
    res = resources(spec.resources, gpus=role.gpus)
    base = _vllm_args(spec, role)
    startup = _http_probe("http", period=10, failures=360)  # model download + load: up to an hour
    if unit.group is None:
        return {
            unit.clique: Container(
                name="vllm", image=image, command=base, env=env or None, resources=res,
                ports=[ContainerPort(name="http", container_port=WORKER_PORT)],
                readiness_probe=_http_probe("http", period=10, failures=3), startup_probe=startup,
                volume_mounts=[shm_mount()],
            )
        }  # fmt: skip
    leader_addr = f"$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-{unit.clique}-0.$(GROVE_HEADLESS_SERVICE)"
    dist = ["--distributed-executor-backend", "mp", "--nnodes", str(role.nodes)]
    rendezvous = ["--master-addr", leader_addr, "--master-port", str(DIST_PORT)]
    leader_cmd = [*base, *dist, "--node-rank", "0", *rendezvous]
    worker_cmd = [*base, *dist, "--node-rank", "$((GROVE_PCLQ_POD_INDEX + 1))", *rendezvous, "--headless"]
    tcp = Probe(tcp_socket=TCPSocketAction(port="dist"), period_seconds=10, failure_threshold=3)
    leader = Container(
        name="vllm", image=image, command=leader_cmd, env=env, resources=res,
        ports=[ContainerPort(name="http", container_port=WORKER_PORT), ContainerPort(name="dist", container_port=DIST_PORT)],
        readiness_probe=tcp, startup_probe=tcp.model_copy(update={"failure_threshold": 60}),
        volume_mounts=[shm_mount()],
    )  # fmt: skip
    worker = Container(
        name="vllm", image=image, command=["sh", "-c", "exec " + _shell_join(worker_cmd)], env=env,
        resources=res, volume_mounts=[shm_mount()],
    )  # fmt: skip
    assert unit.worker is not None
    return {unit.clique: leader, unit.worker: worker}


def _shell_join(args: list[str]) -> str:
    """Quote for ``sh -c`` but leave ``$((...))`` arithmetic and ``$(GROVE_*)`` references expandable."""
    return " ".join(a if a.startswith("$((") or "$(GROVE_" in a else shlex.quote(a) for a in args)
