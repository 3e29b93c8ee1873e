"""What a pod of `grove-pipelines run` sees of this machine's environment: the runtime's own ``GROVE_*``
settings pass, Grove's pod identity, credentials and cluster variables do not."""

from __future__ import annotations

import pytest

from grove_pipelines.local.cluster import image_env
from runtime.engines import nixl_progress
from runtime.tracing.settings import TracingSettings

HOST = {
    "GROVE_TRACE_STORE_TRACES": "7",
    "GROVE_NIXL_PROGRESS_DELAY_US": "0",
    "GROVE_PCS_NAME": "another-run",
    "GROVE_PCLQ_POD_INDEX": "3",
    "GROVE_ROUTER_API_KEY": "host-key",
    "GP_STAGE_URL_SEARCH": "http://elsewhere:8000",
    "KUBERNETES_SERVICE_HOST": "10.0.0.1",
    "KUBECONFIG": "/nowhere",
    "HOME_OF_THE_TEST": "kept",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in HOST.items():
        monkeypatch.setenv(name, value)
    return image_env()


def test_the_runtimes_settings_pass_and_nothing_else_of_grove_or_a_cluster(env: dict[str, str]) -> None:
    passed = {name for name in HOST if name in env}
    assert passed == {"GROVE_TRACE_STORE_TRACES", "GROVE_NIXL_PROGRESS_DELAY_US", "HOME_OF_THE_TEST"}
    assert env["GROVE_TRACE_STORE_TRACES"] == "7"


def test_the_runtime_reads_them_under_these_names(env: dict[str, str]) -> None:
    assert TracingSettings.from_env("server", env).store_traces == 7  # default 0: no store
    assert env[nixl_progress.DELAY_ENV] == "0"  # the user's "keep NIXL's busy poll" (default 1000 µs)
