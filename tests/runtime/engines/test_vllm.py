"""The vLLM command line and environment for each role (what the CPU notes verified, §4–§5a)."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from grove_pipelines.grove.containers import vllm_containers
from grove_pipelines.grove.layout import Unit
from grove_pipelines.spec import PD, LLMSpec, PipelineSpec, Role
from grove_pipelines.spec.vllm import VLLMServe
from runtime.engines.vllm import VLLMConfig


def arg(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_prefill_role_is_a_nixl_kv_producer_with_a_cpu_buffer_on_loopback() -> None:
    config = VLLMConfig(model=Path("/m"), role="prefill", cpu_bind="0")
    argv = config.command(8100)
    assert argv[argv.index("serve") + 1] == "/m"
    assert (arg(argv, "--port"), arg(argv, "--host"), arg(argv, "--seed")) == ("8100", "127.0.0.1", "0")
    assert arg(argv, "--served-model-name") == "tiny" and arg(argv, "--max-model-len") == "2048"
    assert "--enforce-eager" in argv and int(arg(argv, "--kv-cache-memory-bytes")) == 64 * 2**20
    kv = json.loads(arg(argv, "--kv-transfer-config"))
    assert kv == {
        "kv_connector": "NixlConnector",
        "kv_role": "kv_producer",
        "kv_buffer_device": "cpu",
        "kv_load_failure_policy": "recompute",
    }
    env = config.environment(5600, base={})
    assert env["VLLM_HOST_IP"] == env["VLLM_NIXL_SIDE_CHANNEL_HOST"] == "127.0.0.1"
    assert env["UCX_NET_DEVICES"] == "lo" and env["VLLM_NIXL_SIDE_CHANNEL_PORT"] == "5600"
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0" and env["HF_HUB_OFFLINE"] == "1"


def test_decode_role_is_a_kv_consumer_and_aggregated_has_no_connector() -> None:
    decode = VLLMConfig(model=Path("/m"), role="decode").command(1)
    assert json.loads(arg(decode, "--kv-transfer-config"))["kv_role"] == "kv_consumer"
    aggregated = VLLMConfig(model=Path("/m"))
    assert "--kv-transfer-config" not in aggregated.command(1)
    assert "VLLM_NIXL_SIDE_CHANNEL_PORT" not in aggregated.environment(0, base={})


def test_in_a_pod_the_loopback_settings_are_left_out() -> None:
    env = VLLMConfig(model=Path("/m"), role="decode", host="0.0.0.0", loopback=False).environment(
        5601, base={}
    )
    assert "VLLM_HOST_IP" not in env and "UCX_NET_DEVICES" not in env
    assert env["VLLM_NIXL_SIDE_CHANNEL_PORT"] == "5601"


def test_local_and_compiled_workers_share_the_engine_settings() -> None:
    """The launcher's argv and the compiled pod's differ only by the CPU profile's flags."""
    spec = LLMSpec(name="chat", model="m", disaggregated=PD(prefill=Role(), decode=Role()))
    for role in spec.roles():
        unit = Unit(stage="chat", clique=f"chat-{role.role}", role=role.role, spec=role)
        pod = next(iter(vllm_containers(spec, unit, image="x").values())).command
        assert pod is not None
        local = VLLMConfig(model=Path("m"), served_model_name="chat", role=role.role).command(8000)  # type: ignore[arg-type]
        pod_kv, local_kv = (
            json.loads(arg(pod, "--kv-transfer-config")),
            json.loads(arg(local, "--kv-transfer-config")),
        )
        assert local_kv.pop("kv_buffer_device") == "cpu"
        assert pod_kv == local_kv and pod_kv["kv_load_failure_policy"] == "recompute"
        assert pod[1:3] == local[3:5] == ["serve", "m"]


def test_the_default_vllm_image_is_the_release_the_tests_run() -> None:
    image = PipelineSpec(name="x").vllm_image
    assert image.rsplit(":v", 1)[1] == version("vllm").split("+")[0]


def test_a_compiled_command_line_parses_back_to_the_same_arguments() -> None:
    spec = LLMSpec(name="chat", model="m", max_model_len=512, vllm_args=("--trust-remote-code", "--max-num-batched-tokens", "64"),
                   disaggregated=PD(prefill=Role(), decode=Role()))  # fmt: skip
    for role in spec.roles():
        unit = Unit(stage="chat", clique=f"chat-{role.role}", role=role.role, spec=role)
        argv = next(iter(vllm_containers(spec, unit, image="x").values())).command
        assert argv is not None and argv[0] == "vllm"
        parsed = VLLMServe.parse(argv[1:])
        assert parsed.args() == argv[1:] and parsed.role == role.role
        assert parsed.extra_args == ("--trust-remote-code", "--max-num-batched-tokens", "64")
