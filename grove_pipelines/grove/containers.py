"""The containers of the cliques: pipeline server, vLLM (single- and multi-node) and router sidecar.

These command lines are the contract with the runtime (``grove-pipelines serve`` / ``router``) and
with vLLM; change them only together with the runtime.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from grove_pipelines.grove.kube_objects import (
    Capabilities,
    ConfigMapProjection,
    Container,
    ContainerPort,
    DownwardAPIProjection,
    DownwardAPIVolumeFile,
    EnvVar,
    EnvVarSource,
    ExecAction,
    HTTPGetAction,
    KeyToPath,
    Lifecycle,
    LifecycleHandler,
    ObjectFieldSelector,
    Probe,
    ProjectedVolumeSource,
    ResourceRequirements,
    SeccompProfile,
    SecretKeySelector,
    SecurityContext,
    ServiceAccountTokenProjection,
    TCPSocketAction,
    Volume,
    VolumeMount,
    VolumeProjection,
)
from grove_pipelines.grove.layout import Unit
from grove_pipelines.grove.names import CONTAINER_NAME_LIMIT, short_name
from grove_pipelines.spec import LLMSpec, Resources, RoleSpec
from grove_pipelines.spec import router_flags as rf
from grove_pipelines.spec.endpoints import (
    LIVENESS_PATH,
    ROUTER_BIND_HOST,
    ROUTER_READINESS_PATH,
    SERVER_READINESS_PATH,
    VLLM_HEALTH_PATH,
)
from grove_pipelines.spec.server_auth import (
    API_KEYS_ENV,
    API_KEYS_SECRET_KEY,
    STAGE_TOKEN_ENV,
    STAGE_TOKEN_SECRET_KEY,
    auth_secret_name,
)
from grove_pipelines.spec.shutdown import ENDPOINT_REMOVAL_S, VLLM_DRAIN_S, vllm_drain_s
from grove_pipelines.spec.tracing import otlp_traces_target, vllm_tracing_env
from grove_pipelines.spec.vllm import KV_ROLES, VLLMServe

__all__ = [
    "DIST_PORT",
    "ROUTER_BASE_PORT",
    "ROUTER_TOKEN_VOLUME",
    "SA_TOKEN_PATH",
    "TMP_VOLUME",
    "WORKER_PORT",
    "otel_env",
    "pre_stop_sleep",
    "resources",
    "router_container",
    "router_token_volume",
    "security_context",
    "server_auth_env",
    "server_container",
    "shm_mount",
    "tmp_mount",
    "vllm_containers",
]

WORKER_PORT = 8000
TMP_VOLUME = "tmp"
ROUTER_TOKEN_VOLUME = "router-token"
SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VLLM_USER = 1000
"""vLLM's image runs as root by default; its pods run it as this user (HOME on the writable /tmp)."""
ROUTER_BASE_PORT = 9000
DIST_PORT = 29500
"""torch.distributed rendezvous port of a multi-node vLLM leader (``--master-port``)."""


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


def _http_probe(port: int | str, *, period: int, failures: int, path: str, timeout: int = 5) -> Probe:
    # The default 1 s timeout fails a probe whenever a busy CPU delays the answer.
    return Probe(
        http_get=HTTPGetAction(path=path, port=port), period_seconds=period, failure_threshold=failures,
        timeout_seconds=timeout,
    )  # fmt: skip


def security_context(*, read_only_root: bool, user: int | None = None) -> SecurityContext:
    """Non-root, no privilege escalation, every capability dropped, the runtime's seccomp profile.

    ``user`` for images that default to root (vLLM's); a read-only root filesystem where the process
    writes only to /tmp (``tmp_mount``).
    """
    return SecurityContext(
        run_as_non_root=True, run_as_user=user, allow_privilege_escalation=False,
        read_only_root_filesystem=read_only_root, capabilities=Capabilities(drop=["ALL"]),
        seccomp_profile=SeccompProfile(type="RuntimeDefault"),
    )  # fmt: skip


def tmp_mount() -> VolumeMount:
    """A writable /tmp (an emptyDir) for containers with a read-only root filesystem."""
    return VolumeMount(name=TMP_VOLUME, mount_path="/tmp")


def pre_stop_sleep(seconds: int) -> Lifecycle:
    """Keep serving for ``seconds`` after the pod starts terminating, while its endpoints are removed."""
    return Lifecycle(pre_stop=LifecycleHandler(exec=ExecAction(command=["sleep", str(seconds)])))


def router_token_volume() -> Volume:
    """The router's service-account token, mounted by hand into the router container only.

    The pod does not automount its token (the server container runs user code), so the same bound
    token, CA and namespace the kubelet would mount go into this projected volume instead.
    """
    namespace = DownwardAPIVolumeFile(
        path="namespace", field_ref=ObjectFieldSelector(field_path="metadata.namespace")
    )
    return Volume(
        name=ROUTER_TOKEN_VOLUME,
        projected=ProjectedVolumeSource(sources=[
            VolumeProjection(service_account_token=ServiceAccountTokenProjection(path="token", expiration_seconds=3607)),
            VolumeProjection(config_map=ConfigMapProjection(name="kube-root-ca.crt", items=[KeyToPath(key="ca.crt", path="ca.crt")])),
            VolumeProjection(downward_api=DownwardAPIProjection(items=[namespace])),
        ]),
    )  # fmt: skip


def otel_env(otel: Mapping[str, str], taken: list[EnvVar] | None = None) -> list[EnvVar]:
    """The pipeline's tracing variables (``@pipeline(otel=...)``) for one container, after ``taken``:
    a name the container already sets (a stage's own ``env``) keeps that value, and is not repeated."""
    have = {e.name for e in taken or ()}
    return [EnvVar(name=k, value=v) for k, v in otel.items() if k not in have]


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
        readiness_probe=_http_probe("http", period=5, failures=3, path=SERVER_READINESS_PATH),
        liveness_probe=_http_probe("http", period=10, failures=6, path=LIVENESS_PATH),  # a minute of silence
        lifecycle=pre_stop_sleep(ENDPOINT_REMOVAL_S),
        security_context=security_context(read_only_root=True),
        volume_mounts=[tmp_mount()],
    )


def server_auth_env(pcs: str, *, api_keys: bool, stage_token: bool) -> list[EnvVar]:
    """The server's credentials from the pipeline's Secret: bearer keys (entry) and the stage token."""
    wanted = [(API_KEYS_ENV, API_KEYS_SECRET_KEY)] if api_keys else []
    wanted += [(STAGE_TOKEN_ENV, STAGE_TOKEN_SECRET_KEY)] if stage_token else []
    return [
        EnvVar(
            name=env,
            value_from=EnvVarSource(secret_key_ref=SecretKeySelector(name=auth_secret_name(pcs), key=key)),
        )
        for env, key in wanted
    ]


_ROUTER_POOL: dict[str, rf.Pool] = {"serve": "worker", "prefill": "prefill", "decode": "decode"}
"""The router pool that serves an LLM unit of each role."""


def router_container(
    *,
    image: str,
    index: int,
    llm: str,
    units: list[Unit],
    routing: rf.RoutingPolicy,
    env: list[EnvVar] | None = None,
) -> Container:
    """The PD router sidecar of one called LLM: its caller uses ``127.0.0.1:9000+index``, the kubelet probes
    the pod IP, so it listens on every address of the pod.

    A native sidecar (an init container with ``restartPolicy: Always``): the kubelet starts it before
    the server and stops it after the server has exited, so requests the server drains still route.
    """
    port = ROUTER_BASE_PORT + index
    command = [*rf.COMMAND, rf.HOST, ROUTER_BIND_HOST, rf.PORT, str(port), rf.DISCOVERY, rf.GROVE_DISCOVERY]
    for unit in units:
        pool = _ROUTER_POOL[unit.role]
        command += [rf.clique_flag(pool), unit.clique]
        if unit.group is not None:
            command += [rf.group_flag(pool), unit.group]
    command += [rf.WORKER_PORT, str(WORKER_PORT), rf.POLICY, routing]
    return Container(
        name=short_name(f"router-{llm}", CONTAINER_NAME_LIMIT),
        image=image,
        command=command,
        env=env or None,
        ports=[ContainerPort(name=f"router-{index}", container_port=port)],
        resources=ResourceRequirements(
            requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "512Mi"}
        ),
        readiness_probe=_http_probe(port, period=5, failures=3, path=ROUTER_READINESS_PATH),
        restart_policy="Always",
        lifecycle=pre_stop_sleep(ENDPOINT_REMOVAL_S),
        security_context=security_context(read_only_root=True),
        volume_mounts=[
            tmp_mount(),
            VolumeMount(name=ROUTER_TOKEN_VOLUME, mount_path=SA_TOKEN_PATH, read_only=True),
        ],
    )


def shm_mount() -> VolumeMount:
    """/dev/shm for vLLM (PyTorch and NCCL need more than the container default of 64 MiB)."""
    return VolumeMount(name="dshm", mount_path="/dev/shm")


def _pod_ip(name: str) -> EnvVar:
    return EnvVar(
        name=name, value_from=EnvVarSource(field_ref=ObjectFieldSelector(field_path="status.podIP"))
    )


def _vllm_args(spec: LLMSpec, role: RoleSpec, traces: str | None) -> list[str]:
    serve = VLLMServe(
        model=spec.model, served_model_name=spec.model_name, role="aggregated" if role.role == "serve" else role.role, host="0.0.0.0", port=WORKER_PORT,
        tensor_parallel=role.tensor_parallel, max_model_len=spec.max_model_len, otlp_traces_endpoint=traces,
        shutdown_timeout=VLLM_DRAIN_S, extra_args=role.vllm_args,
    )  # fmt: skip
    return ["vllm", *serve.args()]


def vllm_containers(
    spec: LLMSpec, unit: Unit, *, image: str, otel: Mapping[str, str] | None = None
) -> dict[str, Container]:
    """The vLLM container of every clique of ``unit`` (one, or leader and worker), by clique name.

    Multi-node roles run vLLM's multiprocessing backend across pods: the leader (node rank 0) serves
    HTTP and hosts the rendezvous at ``<group>-<j>-<leader>-0`` on the headless Service; workers are
    ``--headless`` with rank ``GROVE_PCLQ_POD_INDEX + 1``. ``$(GROVE_*)`` appear only in command lines,
    where Kubernetes expands them in every Grove version. The leader's readiness is the rendezvous
    port (workers start after it is Ready, and its /health only answers once the workers joined).
    On termination vLLM keeps serving through the ``preStop`` sleep, then finishes its requests in
    flight (``grove_pipelines.spec.shutdown``).
    """
    role = unit.spec
    assert role is not None
    env = [EnvVar(name=k, value=v) for k, v in spec.env.items()]
    env.append(EnvVar(name="HOME", value="/tmp"))  # caches (HF, torch) of the non-root user
    if role.role in KV_ROLES:  # NIXL's handshake address: the pod, not the default "localhost"
        env.append(_pod_ip("VLLM_NIXL_SIDE_CHANNEL_HOST"))
    if unit.group is not None:  # the address other nodes reach this one on
        env.append(_pod_ip("VLLM_HOST_IP"))
    target = otlp_traces_target(otel or {})
    vllm_otel = vllm_tracing_env(target, role.role) if target is not None else {}
    env += otel_env({**(otel or {}), **vllm_otel}, env)
    res = resources(spec.resources, gpus=role.gpus)
    base = _vllm_args(spec, role, target.endpoint if target is not None else None)
    startup = _http_probe(
        "http", period=10, failures=360, path=VLLM_HEALTH_PATH
    )  # model download + load: up to an hour
    # torch, Triton and vLLM write caches all over the filesystem: the root stays writable.
    vllm_security = security_context(read_only_root=False, user=VLLM_USER)
    if unit.group is None:
        return {
            unit.clique: Container(
                name="vllm", image=image, command=base, env=env or None, resources=res,
                ports=[ContainerPort(name="http", container_port=WORKER_PORT)],
                readiness_probe=_http_probe("http", period=10, failures=3, path=VLLM_HEALTH_PATH), startup_probe=startup,
                liveness_probe=_http_probe("http", period=10, failures=6, path=VLLM_HEALTH_PATH, timeout=10),
                lifecycle=pre_stop_sleep(ENDPOINT_REMOVAL_S), security_context=vllm_security, volume_mounts=[shm_mount()],
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
        lifecycle=pre_stop_sleep(ENDPOINT_REMOVAL_S), security_context=vllm_security, volume_mounts=[shm_mount()],
    )  # fmt: skip
    worker = Container(
        name="vllm", image=image, command=["sh", "-c", "exec " + _shell_join(worker_cmd)], env=env,
        resources=res, security_context=vllm_security, volume_mounts=[shm_mount()],
        # the leader's engine needs its workers until its drain is over
        lifecycle=pre_stop_sleep(ENDPOINT_REMOVAL_S + vllm_drain_s(role.vllm_args)),
    )  # fmt: skip
    assert unit.worker is not None
    return {unit.clique: leader, unit.worker: worker}


def _shell_join(args: list[str]) -> str:
    """Quote for ``sh -c`` but leave ``$((...))`` arithmetic and ``$(GROVE_*)`` references expandable."""
    return " ".join(a if a.startswith("$((") or "$(GROVE_" in a else shlex.quote(a) for a in args)
