"""The compiled agentic example running in the local runtime with real vLLM, once per test session.

``agentic_cluster`` compiles ``pipelines/agentic_rag.py``, runs every pod in its own network namespace
with the local profile (tiny model, CPU flags: three vLLM workers, two retrievers, three stage servers,
the frontend) and forwards the entry Service to a free port on 127.0.0.1. Starting takes a few minutes
on 2 cores; every test of the netns runtime shares it. Run by hand through ``vllm-slot``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from grove_pipelines.compile import compile_ref
from grove_pipelines.local.cluster import LocalCluster
from grove_pipelines.local.manifest_run import entry_service
from grove_pipelines.local.plan import model_max_len
from grove_pipelines.local.profile import LocalProfile
from runtime.engines.supervisor import free_port
from tests.local.cluster_thread import ClusterThread

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = float(os.environ.get("GROVE_LOCAL_START_TIMEOUT", "900"))


@dataclass
class AgenticCluster:
    """The running example: the cluster, its loop thread, the entry's base URL and the documents."""

    thread: ClusterThread
    base: str
    documents: list[dict]

    @property
    def cluster(self) -> LocalCluster:
        return self.thread.cluster


@pytest.fixture(scope="session")
def agentic_cluster(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgenticCluster]:
    if os.geteuid() != 0:
        pytest.skip("the local runtime makes network namespaces: it needs root")
    cwd = Path.cwd()
    os.chdir(ROOT)  # the compiled commands name the pipeline by its path in the repository
    try:
        documents = compile_ref("pipelines/agentic_rag.py")
        profile = LocalProfile(model=tiny_model, max_model_len=model_max_len(tiny_model))
        cluster = LocalCluster(
            documents, rewrite=lambda pod, c: profile.apply(c, multi_node=pod.pcsg is not None),
            log_dir=tmp_path_factory.mktemp("agentic-pods"), progress=print,
        )  # fmt: skip
        thread = ClusterThread(cluster)
        try:
            port = thread.call(cluster.forward(entry_service(documents), port=free_port()), timeout=30)
            thread.call(cluster.start(), timeout=120)
            thread.call(cluster.wait_all_ready(START_TIMEOUT), timeout=START_TIMEOUT + 30)
            yield AgenticCluster(thread, f"http://127.0.0.1:{port}", documents)
        finally:
            thread.close()
    finally:
        os.chdir(cwd)
