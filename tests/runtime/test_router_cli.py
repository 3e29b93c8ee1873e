"""`grove-pipelines router`: one-line errors for bad options, and a real process that drains on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from grove_pipelines.cli.main import main
from tests.polling import eventually
from tests.runtime.conftest import MakeFake
from tests.runtime.router.test_flow import COMPLETION

CLI = str(Path(sys.executable).parent / "grove-pipelines")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--worker", "http://127.0.0.1:9", "--policy", "fastest"],
            "error: unknown routing policy 'fastest'; known: least_loaded, prefix, round_robin",
        ),
        (
            [],
            (
                "error: invalid router configuration: no workers: give --prefill and --decode, or --worker "
                "(or a discovery mode)"
            ),
        ),
        (
            ["--prefill", "http://127.0.0.1:9"],
            (
                "error: invalid router configuration: disaggregated mode needs both --prefill and --decode "
                "workers"
            ),
        ),
        (
            ["--worker", "127.0.0.1:9"],
            "error: invalid router configuration: worker: '127.0.0.1:9' is not an http:// or https:// URL",
        ),
        (
            ["--config", "/nonexistent/router.yaml"],
            "error: cannot read config file /nonexistent/router.yaml: No such file or directory",
        ),
        (
            ["--discovery", "grove", "--prefill-clique", "p", "--decode-clique", "d", "--port", "0"],
            (
                "error: --discovery grove needs the Grove pod variables; missing: GROVE_PCS_NAME, "
                "GROVE_PCS_INDEX, GROVE_HEADLESS_SERVICE"
            ),
        ),
    ],
)
def test_bad_options_are_one_error_line_and_exit_code_1(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GROVE_PCS_NAME", "GROVE_PCS_INDEX", "GROVE_HEADLESS_SERVICE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["router", *args])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == message + "\n"


def test_config_file_values_are_used_and_flags_win(tmp_path: Path) -> None:
    from runtime.router.config import load_config

    path = tmp_path / "router.yaml"
    path.write_text(
        "worker: [http://127.0.0.1:9]\npolicy: {name: prefix, params: {block_chars: 64}}\n"
        "limits: {max_concurrent: 4}\n"
    )
    config = load_config(path, {"policy": {"name": "least_loaded"}, "limits": {"queue_size": 2}})
    assert config.worker == ["http://127.0.0.1:9"] and config.policy.name == "least_loaded"
    assert (config.limits.max_concurrent, config.limits.queue_size) == (4, 2)
    path.write_text("policy: {name: prefix, params: {block_chars: 1}}\nworker: [http://127.0.0.1:9]\n")
    from runtime.errors import RouterConfigError
    from runtime.router.server import RouterServer

    with pytest.raises(RouterConfigError, match="policy prefix: invalid parameters: block_chars"):
        RouterServer(load_config(path))


@pytest.mark.asyncio(loop_scope="session")
async def test_router_process_serves_then_drains_on_sigterm_and_exits_0(fakes: MakeFake) -> None:
    worker = await fakes()
    proc = await asyncio.create_subprocess_exec(
        CLI,
        "router",
        "--worker",
        worker.url,
        "--port",
        "0",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line.startswith("router listening on http://127.0.0.1:")
        url = line.split(" on ", 1)[1].strip()
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/v1/completions", json=COMPLETION) as r:
                assert r.status == 200
            worker.set_delay(1.0)
            slow = asyncio.create_task(http.post(f"{url}/v1/completions", json=COMPLETION))
            await eventually(lambda: len(worker.completions()) >= 2, what="the slow request reached the worker")
            proc.send_signal(signal.SIGTERM)
            answer = await slow
            assert answer.status == 200 and (await answer.json())["choices"][0]["text"].startswith(
                "aggregated0"
            )
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
