"""The offline tiny model: deterministic, reused when unchanged, clear errors, and a working tokenizer."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from grove_pipelines.cli.main import main
from grove_pipelines.errors import ModelError
from grove_pipelines.local.tiny_model import MARKER_FILE, TinyModelSpec, write_tiny_model


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_generation_is_deterministic_and_reused(tmp_path: Path, tiny_model: Path) -> None:
    fresh = write_tiny_model(tmp_path / "model")
    assert digests(fresh) == digests(tiny_model)
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", MARKER_FILE} <= set(
        digests(fresh)
    )
    stamp = (fresh / "model.safetensors").stat().st_mtime_ns
    assert write_tiny_model(fresh) == fresh
    assert (fresh / "model.safetensors").stat().st_mtime_ns == stamp  # same spec: nothing rewritten


def test_another_seed_rebuilds_the_weights_in_place(tmp_path: Path, tiny_model: Path) -> None:
    target = tmp_path / "model"
    shutil.copytree(tiny_model, target)
    write_tiny_model(target, seed=1)
    after = digests(target)
    assert after["model.safetensors"] != digests(tiny_model)["model.safetensors"]
    assert after["tokenizer.json"] == digests(tiny_model)["tokenizer.json"]
    assert TinyModelSpec.model_validate_json((target / MARKER_FILE).read_text()).seed == 1


def test_tokenizer_round_trips_and_renders_the_chat_template(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    text = "def hello(world):\n    return 42"
    assert tok.decode(tok(text)["input_ids"]) == text
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|bos|><|user|>\nhi<|end|>\n<|assistant|>\n"


def test_a_file_in_the_way_is_a_model_error(tmp_path: Path) -> None:
    blocker = tmp_path / "model"
    blocker.write_text("not a directory")
    with pytest.raises(ModelError, match="exists and is not a directory"):
        write_tiny_model(blocker)


def test_cli_prints_where_and_how_big(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "copy"
    shutil.copytree(tiny_model, target)  # same spec: the command reuses it
    with pytest.raises(SystemExit) as exit_info:
        main(["tiny-model", str(target)])
    assert exit_info.value.code in (0, None)
    assert capsys.readouterr().out == f"tiny model in {target} (1.8 MB)\n"


def test_cli_error_is_one_line_and_exit_code_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main(["tiny-model", str(tmp_path / "file" / "model")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write the tiny model to {tmp_path / 'file' / 'model'}")
    assert err.count("\n") == 1
