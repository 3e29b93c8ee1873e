"""What `grove-pipelines run` decides to start, checked before anything starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from grove_pipelines.cli.main import main
from grove_pipelines.errors import RunError
from grove_pipelines.loader import load_graph
from grove_pipelines.local.plan import example_body, model_max_len, parse_attach, plan_llms

ROOT = Path(__file__).resolve().parents[2]


def test_agentic_rag_gets_a_prefill_decode_pair_capped_to_the_local_model() -> None:
    graph = load_graph(str(ROOT / "pipelines" / "agentic_rag.py"))
    (plan,) = plan_llms(graph, max_len=2048)
    assert plan.stage == "chat" and plan.served_model_name == "chat"
    assert plan.roles == ("prefill", "decode")
    assert plan.max_model_len == 2048  # the stage asks 4096; the tiny model has 2048 positions
    assert plan.router_args(["http://p", "http://d"]) == [
        "--prefill", "http://p", "--decode", "http://d", "--policy", "prefix",
    ]  # fmt: skip


def test_aggregated_stage_gets_one_worker() -> None:
    (plan,) = plan_llms(load_graph(str(ROOT / "pipelines" / "aggregated.py")), max_len=8192)
    assert plan.roles == ("aggregated",) and plan.max_model_len == 4096
    assert plan.router_args(["http://w"]) == ["--worker", "http://w", "--policy", "prefix"]


def test_attach_is_parsed_and_checked_against_the_stages() -> None:
    assert parse_attach(["chat=http://a:1,http://b:2/"]) == {"chat": ("http://a:1", "http://b:2")}
    graph = load_graph(str(ROOT / "pipelines" / "agentic_rag.py"))
    with pytest.raises(RunError, match="not an LLM stage of 'agentic-rag'"):
        plan_llms(graph, max_len=2048, attach={"retriever": ("http://a",)})
    with pytest.raises(RunError, match="disaggregated; give PREFILL_URL,DECODE_URL"):
        plan_llms(graph, max_len=2048, attach={"chat": ("http://a",)})
    for bad in ("chat", "chat=", "chat=ftp://x", "=http://x"):
        with pytest.raises(RunError, match="expected NAME=URL"):
            parse_attach([bad])


def test_model_max_len_reads_the_model_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 512}')
    assert model_max_len(tmp_path) == 512
    assert model_max_len(tmp_path / "missing") == 2048


def test_example_body_fills_required_fields() -> None:
    schema = {
        "properties": {"question": {"type": "string"}, "k": {"type": "integer"}},
        "required": ["question"],
    }
    assert example_body(schema) == {"question": "What is prefill/decode disaggregation?"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "pipelines/missing.py"], "error: no such file: pipelines/missing.py"),
        (
            ["run", "pipelines/agentic_rag.py", "--model", "no-such-dir"],
            "error: --model no-such-dir: not a model directory",
        ),
        (
            ["run", "pipelines/agentic_rag.py", "--attach", "chat"],
            "error: --attach 'chat': expected NAME=URL",
        ),
    ],
)
def test_run_refuses_bad_options_in_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as info:
        main([*args, "--port", "0"])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert sys.modules.get("vllm") is None  # refused before anything heavy was imported or started
