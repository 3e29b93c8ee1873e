"""pytest plugin: real vLLM workers (CPU build, tiny model), started at most once per test session.

Registered in ``tests/conftest.py`` (``pytest_plugins = ["tests.vllm_fixtures"]``). Every fixture is
lazy: nothing starts until a test asks for it, so ``pytest -m "not vllm"`` never pays for vLLM. Mark
the tests that use them ``@pytest.mark.vllm``.

Fixtures (session scope):

* ``tiny_model`` → ``Path`` of the offline demo model (``.cache/tiny-model`` in the repository,
  generated once, reused by ``make run``).
* ``vllm_pd_pair`` → :class:`runtime.engines.vllm.PDPair`: a NixlConnector prefill worker
  (kv_producer, ``.prefill``) and decode worker (kv_consumer, ``.decode``), started together (about
  1–3 min on 2 cores, ~2–3 GiB each), served model name ``tiny``, greedy-reproducible (``--seed 0``,
  eager). Use ``pair.prefill.url`` / ``pair.decode.url``. The decode worker also serves requests on its
  own (no ``kv_transfer_params``): that is the "decode worker alone" baseline, so tests need no third
  instance. A test may kill a worker (``pair.prefill.kill()``): the next test that asks for the pair
  gets it restarted. Logs: ``vllm-prefill.log`` / ``vllm-decode.log`` in ``vllm_log_dir``. Both
  export their own spans (``--otlp-traces-endpoint``) to ``vllm_span_collector`` and report cached
  prompt tokens in their answers' usage (``--enable-prompt-tokens-details``).
* ``vllm_span_collector`` → :class:`tests.otlp_collector.Collector`: the OTLP collector double the pair
  sends its spans to (vLLM's ``llm_request`` span per request, under the request's ``traceparent``),
  for the whole session.
* ``vllm_log_dir`` → where the workers' logs go (a pytest temporary directory).
* ``vllm_kv_worker`` → :class:`KVEventsWorker`: one extra small aggregated worker that publishes its
  KV-cache events on ZMQ (``.events``, an ``ipc://`` address), with 32-token blocks and a cache bounded
  at ``KV_WORKER_BLOCKS`` blocks so eviction happens after a few prompts; started only when a test
  asks for it (the routing tests of issue 12), once per session.
* ``vllm_drain_worker`` → :class:`runtime.engines.vllm.VLLMProcess`: one more aggregated worker with the
  compiled pods' ``--shutdown-timeout`` (``VLLM_DRAIN_S``), for the one test that sends it SIGTERM;
  stopped after that test.

Put a test that kills a worker last with ``@pytest.mark.vllm_last`` (the restart costs ~1 min).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from grove_pipelines.local.tiny_model import write_tiny_model
from grove_pipelines.spec.shutdown import VLLM_DRAIN_S
from grove_pipelines.spec.tracing import OTLPTarget
from grove_pipelines.spec.vllm import EngineRole
from runtime.engines.vllm import PDPair, VLLMConfig, VLLMProcess, start_together
from tests.otlp_collector import Collector, otlp_collector

__all__ = [
    "KVEventsWorker",
    "tiny_model",
    "vllm_drain_worker",
    "vllm_kv_worker",
    "vllm_log_dir",
    "vllm_pd_pair",
    "vllm_span_collector",
]

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = float(os.environ.get("GROVE_VLLM_START_TIMEOUT", "480"))
VLLM_TEST_TIMEOUT = 300.0
"""Seconds a vLLM or Ray test may take besides one start of the workers."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vllm_last: run after every other vLLM test (it breaks a shared worker)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move ``vllm_last`` tests to the end, so a killed worker is restarted only if someone needs it.

    Tests that may start vLLM or Ray get a per-test timeout that covers one start (pyproject's default
    is for everything else); a test's own ``@pytest.mark.timeout`` still wins.
    """
    items.sort(key=lambda item: item.get_closest_marker("vllm_last") is not None)
    for item in items:
        slow = item.get_closest_marker("vllm") or item.get_closest_marker("ray")
        if slow is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(START_TIMEOUT + VLLM_TEST_TIMEOUT))


def _say(request: pytest.FixtureRequest, line: str) -> None:
    """Progress on the terminal even while pytest captures output."""
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if capman is None:
        print(line, flush=True)
        return
    with capman.global_and_fixture_disabled():
        print(line, flush=True)


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The offline tiny model (generated on first use, ~5 s)."""
    return write_tiny_model(ROOT / ".cache" / "tiny-model")


@pytest.fixture(scope="session")
def vllm_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the vLLM workers' logs."""
    return tmp_path_factory.mktemp("vllm-logs")


def _start(request: pytest.FixtureRequest, procs: list[VLLMProcess]) -> None:
    started = time.monotonic()
    last = [0.0]

    def progress(elapsed: float, line: str) -> None:
        if elapsed - last[0] >= 15:
            last[0] = elapsed
            _say(
                request,
                f"\n[vllm] starting {', '.join(p.name for p in procs)}: {elapsed:.0f} s: {line[:100]}",
            )

    start_together(procs, START_TIMEOUT, progress)
    _say(request, f"\n[vllm] {', '.join(p.name for p in procs)} ready in {time.monotonic() - started:.0f} s")


@pytest.fixture(scope="session")
def vllm_span_collector() -> Iterator[Collector]:
    """The OTLP collector double the session's vLLM pair exports its spans to."""
    with otlp_collector() as collector:
        yield collector


_PAIR_ARGS = ("--enable-prompt-tokens-details",)
"""Answers report ``usage.prompt_tokens_details.cached_tokens`` (the router puts it on its leg spans)."""
_SPAN_BATCH_ENV = {"OTEL_BSP_SCHEDULE_DELAY": "200"}
"""vLLM's span batches leave every 0.2 s (the SDK's default is 5 s), so a test sees them soon."""


@pytest.fixture(scope="session")
def vllm_pd_pair(
    request: pytest.FixtureRequest, tiny_model: Path, vllm_log_dir: Path, vllm_span_collector: Collector
) -> Iterator[PDPair]:
    """A NixlConnector prefill + decode pair on the tiny model (see the module docstring)."""
    spans = OTLPTarget(endpoint=f"{vllm_span_collector.endpoint}/v1/traces")

    def worker(role: EngineRole, cpu: str) -> VLLMProcess:
        config = VLLMConfig(
            model=tiny_model,
            role=role,
            cpu_bind=cpu,
            tracing=spans,
            extra_env=_SPAN_BATCH_ENV,
            extra_args=_PAIR_ARGS,
        )
        return VLLMProcess(config, log_dir=vllm_log_dir)

    pair = PDPair(prefill=worker("prefill", "0"), decode=worker("decode", "1"))
    _start(request, [pair.prefill, pair.decode])
    try:
        yield pair
    finally:
        pair.stop()


KV_WORKER_BLOCKS = 24
"""Blocks of 32 tokens in the KV-events worker's cache: 768 tokens, a few prompts' worth."""


@dataclass
class KVEventsWorker:
    """An aggregated vLLM worker and the ZMQ address of its KV-cache events."""

    proc: VLLMProcess
    events: str
    block_size: int = 32
    blocks: int = KV_WORKER_BLOCKS


@pytest.fixture(scope="session")
def vllm_kv_worker(
    request: pytest.FixtureRequest,
    tiny_model: Path,
    vllm_log_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KVEventsWorker]:
    """A small aggregated worker with KV events on (see the module docstring)."""
    events = f"ipc://{tmp_path_factory.mktemp('kv-events') / 'events.sock'}"
    config = {"enable_kv_cache_events": True, "publisher": "zmq", "endpoint": events}
    proc = VLLMProcess(
        VLLMConfig(
            model=tiny_model,
            cpu_bind="1",
            max_model_len=512,
            extra_args=(
                "--kv-events-config",
                json.dumps(config),
                "--block-size",
                "32",
                "--num-gpu-blocks-override",
                str(KV_WORKER_BLOCKS),
            ),
        ),
        log_dir=vllm_log_dir,
        name="vllm-kv-events",
    )
    _start(request, [proc])
    try:
        yield KVEventsWorker(proc, events)
    finally:
        proc.stop()


@pytest.fixture
def vllm_drain_worker(
    request: pytest.FixtureRequest, tiny_model: Path, vllm_log_dir: Path
) -> Iterator[VLLMProcess]:
    """An aggregated worker that drains on SIGTERM as the compiled pods' do (see the module docstring)."""
    config = VLLMConfig(model=tiny_model, cpu_bind="1", max_model_len=1024, shutdown_timeout=VLLM_DRAIN_S)
    proc = VLLMProcess(config, log_dir=vllm_log_dir, name="vllm-drain")
    _start(request, [proc])
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(autouse=True)
def _revive_vllm_pair(request: pytest.FixtureRequest) -> None:
    """Restart a pair member that an earlier test killed, before a test that uses the pair."""
    if "vllm_pd_pair" not in request.fixturenames:
        return
    pair: PDPair = request.getfixturevalue("vllm_pd_pair")
    dead = [p for p in (pair.prefill, pair.decode) if not p.running]
    if dead:
        for proc in dead:
            proc.stop()
        _start(request, dead)
