"""`grove-pipelines status` with live numbers: a real pipeline server process behind the entry pod of a
pipeline deployed to the API server double, read through the double's pod proxy.

The server answers real requests first (some fail in a stage on purpose); status must report what the
test sent, counted independently, and a pod it cannot read must be named, not crash the command.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from grove_pipelines.kube.live import METRICS_LIMIT
from tests.kube.apiserver import ApiServerDouble
from tests.kube.conftest import Cli
from tests.runtime.server.served import start_serve

PIPELINE = """
from grove_pipelines import pipeline, stage


@stage
async def check(text: str) -> str:
    if text == "boom":
        raise ValueError("boom")
    return text


@stage
async def count(text: str) -> int:
    return len(text.split())


@pipeline(name="words")
async def words(text: str) -> dict[str, int]:
    return {"words": await count(await check(text))}
"""
TEXTS = ["a b c", "boom", "one", "boom", "two words", "x y z w"]


@pytest.fixture
def deployed(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The pipeline deployed and running in the double; returns the entry pod's name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "words_pipeline.py").write_text(PIPELINE)
    done = cli("deploy", "words_pipeline.py", "--wait", "--timeout", "2m")
    assert done.code == 0, done.err
    pods = [
        p["metadata"]["name"]
        for p in apiserver.items("/v1/pods", "demo")
        if p["metadata"]["labels"].get("grove.io/podclique") == "words-0-frontend"
    ]
    assert len(pods) == 1
    return str(pods[0])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The entry's pipeline server, a real process, after the test's requests."""
    (tmp_path / "words_served.py").write_text(PIPELINE)
    served = start_serve(tmp_path / "words_served.py")
    try:
        for text in TEXTS:
            httpx.post(f"{served.endpoint}/v1/pipelines/words", json={"text": text}, timeout=30)
        yield served.endpoint
    finally:
        served.kill()


def test_status_adds_the_entrys_live_numbers(
    apiserver: ApiServerDouble, deployed: str, server: str, cli: Cli
) -> None:
    apiserver.attach("demo", deployed, 8000, server.removeprefix("http://"))
    done = cli("status", "words", "-o", "json")
    assert done.code == 0, done.err
    live = json.loads(done.out)["live"]
    failed = TEXTS.count("boom")
    assert live["pods"] == 1 and live["unreadable"] == []
    words = live["pipelines"]["words"]
    assert (words["requests"], words["errors"], words["in_flight"]) == (len(TEXTS), failed, 0)
    assert 0 < words["p50_s"] <= words["p99_s"]
    check, count = live["stages"]["check"], live["stages"]["count"]
    assert (check["calls"], check["errors"], check["retries"]) == (len(TEXTS), failed, 0)
    assert (count["calls"], count["errors"]) == (len(TEXTS) - failed, 0)
    assert apiserver.calls("GET", f"/pods/{deployed}:8000/proxy/metrics")

    table = cli("status", "words")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert "live, since each pod started (1 entry pod read):" in lines
    row = next(line.split() for line in lines if line.startswith("words "))
    assert row[:4] == ["words", str(len(TEXTS)), str(failed), "0"]
    row = next(line.split() for line in lines if line.startswith("check "))
    assert row[:4] == ["check", str(len(TEXTS)), str(failed), "0"]


def test_a_pod_that_does_not_answer_is_named(apiserver: ApiServerDouble, deployed: str, cli: Cli) -> None:
    done = cli("status", "words")
    assert done.code == 0, done.err
    assert "live, since each pod started (0 entry pods read):" in done.out
    unreadable = [line for line in done.out.splitlines() if line.startswith("unreadable: ")]
    assert len(unreadable) == 1 and f"of pod {deployed}: " in unreadable[0]
    assert "connection refused" in unreadable[0]


def test_without_rbac_for_the_proxy_status_still_answers(
    apiserver: ApiServerDouble, deployed: str, server: str, cli: Cli
) -> None:
    apiserver.attach("demo", deployed, 8000, server.removeprefix("http://"))
    apiserver.forbid("get", "pods/proxy")
    done = cli("status", "words", "-o", "json")
    assert done.code == 0, done.err
    live = json.loads(done.out)["live"]
    assert live["pods"] == 0 and live["pipelines"] == {}
    assert "forbidden" in live["unreadable"][0] and f"pod {deployed}" in live["unreadable"][0]


def test_no_live_reads_no_pod(apiserver: ApiServerDouble, deployed: str, cli: Cli) -> None:
    done = cli("status", "words", "--no-live", "-o", "json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["live"] is None
    assert apiserver.calls(contains="/proxy") == []


class _Hostile(BaseHTTPRequestHandler):
    """A pod whose /metrics answers an HTML page, or more bytes than status reads."""

    def do_GET(self) -> None:
        body = b"<html><body>not metrics</body></html>\n" if self.path == "/metrics" else b""
        if self.server.huge:  # type: ignore[attr-defined]
            body = b"x 1\n" * (METRICS_LIMIT // 4 + 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.mark.parametrize(
    ("huge", "said"), [(False, "not in the Prometheus text format"), (True, "larger than")]
)
def test_a_pod_answering_garbage_is_named(
    apiserver: ApiServerDouble, deployed: str, cli: Cli, huge: bool, said: str
) -> None:
    hostile = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    hostile.huge = huge  # type: ignore[attr-defined]
    thread = threading.Thread(target=hostile.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        apiserver.attach("demo", deployed, 8000, f"127.0.0.1:{hostile.server_address[1]}")
        done = cli("status", "words", "-o", "json")
    finally:
        hostile.shutdown()
        hostile.server_close()
        thread.join(timeout=5)
    assert done.code == 0, done.err
    live = json.loads(done.out)["live"]
    assert live["pods"] == 0 and live["pipelines"] == {} and live["stages"] == {}
    assert (
        len(live["unreadable"]) == 1 and deployed in live["unreadable"][0] and said in live["unreadable"][0]
    )
