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
from tests.runtime.conftest import MakeFake
from tests.runtime.router.test_legs import COMPLETION

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


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--api-key", ""],
            {},
            "error: an API key must be a non-empty token of visible ASCII characters without commas",
        ),
        ([], {"GROVE_ROUTER_API_KEY": " "}, "error: $GROVE_ROUTER_API_KEY is set but holds no API key"),
        (
            ["--api-key-file", "/nonexistent/keys"],
            {},
            "error: cannot read API key file /nonexistent/keys: No such file or directory",
        ),
    ],
)
def test_empty_or_unreadable_api_keys_fail_closed_with_one_error_line(
    args: list[str],
    env: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GROVE_ROUTER_API_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        main(["router", "--worker", "http://127.0.0.1:9", "--port", "0", *args])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.splitlines()[-1] == message


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
async def test_router_process_serves_then_drains_on_sigterm_and_exits_0(
    fakes: MakeFake, tmp_path: Path
) -> None:
    worker = await fakes()
    key_file = tmp_path / "keys"
    key_file.write_text("from-file\n")  # as a mounted Secret would
    proc = await asyncio.create_subprocess_exec(
        CLI,
        "router",
        "--worker",
        worker.url,
        "--port",
        "0",
        "--api-key-file",
        str(key_file),
        "--debug-routing",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "GROVE_ROUTER_API_KEY": "from-env"},
    )
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line.startswith("router listening on http://127.0.0.1:")
        url = line.split(" on ", 1)[1].strip()
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer from-file"}) as http:
            async with http.post(
                f"{url}/v1/completions", json=COMPLETION, headers={"Authorization": ""}
            ) as r:
                assert r.status == 401
            for key in ("from-env", "from-file"):
                headers = {"Authorization": f"Bearer {key}"}
                async with http.post(f"{url}/v1/completions", json=COMPLETION, headers=headers) as r:
                    assert r.status == 200 and r.headers["x-grove-route"].startswith("mode=aggregated")
            worker.set_delay(1.0)
            slow = asyncio.create_task(http.post(f"{url}/v1/completions", json=COMPLETION))
            for _ in range(500):  # bounded: the request reaches the worker within seconds
                if len(worker.completions()) >= 3:
                    break
                await asyncio.sleep(0.01)
            assert len(worker.completions()) == 3
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
