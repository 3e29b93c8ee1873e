"""vLLM exports its own spans only when told: ``--otlp-traces-endpoint``, the protocol and a service name.

``grove-pipelines run`` starts vLLM through :class:`VLLMConfig` (plain processes) or through the
local profile (the compiled pods): both take the endpoint from the run's ``OTEL_*`` variables. The
expected command lines are written out here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grove_pipelines.local.profile import LocalProfile
from grove_pipelines.spec.tracing import OTLPTarget, otlp_traces_target
from runtime.engines.vllm import VLLMConfig

pytestmark = pytest.mark.timeout(30)

TARGET = OTLPTarget(endpoint="http://127.0.0.1:4318/v1/traces")


def test_vllm_config_adds_the_flag_and_the_env_vllm_reads() -> None:
    config = VLLMConfig(model=Path("m"), role="decode", tracing=TARGET)
    argv = config.command(8000)
    assert argv[argv.index("--otlp-traces-endpoint") + 1] == "http://127.0.0.1:4318/v1/traces"
    env = config.environment(5600, base={})
    assert env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_SERVICE_NAME"] == "vllm-decode"


def test_no_target_no_flag() -> None:
    config = VLLMConfig(model=Path("m"))
    assert "--otlp-traces-endpoint" not in config.command(8000)
    assert not any(k.startswith("OTEL_") for k in config.environment(0, base={}))


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, ("http://c:4318/v1/traces", "http/protobuf")),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ("http://c:4317", "grpc")),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, ("http://t/x", "http/protobuf")),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_TRACES_EXPORTER": "none"}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SDK_DISABLED": "TRUE"}, None),
])  # fmt: skip
def test_the_target_is_resolved_as_the_specification_says(
    environ: dict[str, str], expected: tuple[str, str] | None
) -> None:
    target = otlp_traces_target(environ)
    assert (None if target is None else (target.endpoint, target.protocol)) == expected


def test_the_local_profile_gives_compiled_vllm_the_runs_endpoint(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    container = {
        "name": "vllm",
        "command": ["vllm", "serve", "m", "--served-model-name", "m", "--host", "0.0.0.0", "--port", "8000"],
    }
    out = LocalProfile(model=tiny_model, max_model_len=512).apply(container, multi_node=False)
    argv = out["command"]
    assert argv[argv.index("--otlp-traces-endpoint") + 1] == "http://127.0.0.1:4318/v1/traces"
    env = {e["name"]: e["value"] for e in out["env"]}
    assert env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf" and env["OTEL_SERVICE_NAME"] == "vllm"
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    plain = LocalProfile(model=tiny_model, max_model_len=512).apply(container, multi_node=False)
    assert "--otlp-traces-endpoint" not in plain["command"]
