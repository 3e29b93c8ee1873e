"""The offline demo model: a tiny random-weight Llama that real vLLM serves on a CPU in seconds.

No hub access is possible on the machines this project runs on, so the model is generated: a
byte-level BPE tokenizer trained on local text (the Python standard library's sources), a chat
template, and a ``LlamaForCausalLM`` with random weights drawn from a fixed seed. The output is
deterministic for a given Python installation, and a marker file records the parameters, so a second
call with the same parameters returns at once (``make run`` and the tests reuse the directory).

Example::

    from grove_pipelines.local.tiny_model import write_tiny_model
    path = write_tiny_model(Path(".cache/tiny-model"))   # ~2 MB, ~20 s the first time
"""

from __future__ import annotations

import json
import os
import shutil
import sysconfig
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from grove_pipelines.errors import ModelError

__all__ = ["CHAT_TEMPLATE", "MARKER_FILE", "TinyModelSpec", "model_size_bytes", "write_tiny_model"]

MARKER_FILE = ".grove-tiny-model.json"
"""Written last into a finished model directory; holds the :class:`TinyModelSpec` it was made with."""

GENERATOR_VERSION = 1
"""Bump when the generator's output changes for the same parameters, so old directories are rebuilt."""

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

SPECIAL_TOKENS = (
    "<|pad|>",
    "<|bos|>",
    "<|eos|>",
    "<|unk|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
)


class TinyModelSpec(BaseModel):
    """Everything that determines the generated files; two equal specs give byte-identical weights."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    vocab_size: int = Field(default=2048, ge=512, le=65536)
    hidden_size: int = Field(default=128, ge=32, le=4096)
    num_layers: int = Field(default=2, ge=1, le=64)
    num_heads: int = Field(default=4, ge=1, le=64)
    max_position_embeddings: int = Field(default=2048, ge=128)
    # Larger than the HF default 0.02 so that greedy output depends on the context: a router test that
    # compares outputs must be able to see a wrong KV cache.
    init_range: float = Field(default=0.2, gt=0)
    dtype: Literal["bfloat16", "float32", "float16"] = "bfloat16"
    corpus_bytes: int = Field(default=4_000_000, ge=10_000)
    generator_version: int = GENERATOR_VERSION


def write_tiny_model(out_dir: Path, *, spec: TinyModelSpec | None = None, **params: Any) -> Path:
    """Write the tiny model into ``out_dir`` (created if needed) and return its path.

    Parameters are the fields of :class:`TinyModelSpec` (``seed=0`` and so on) or a whole ``spec``.
    When ``out_dir`` already holds a model made with the same spec, nothing is regenerated. The files
    are built in a temporary sibling directory and moved into place, so an interrupted run never
    leaves a half-written model that looks finished.

    Raises:
        ModelError: the directory cannot be written, or the generation itself failed.
    """
    spec = spec if spec is not None else TinyModelSpec(**params)
    out_dir = Path(out_dir)
    if _existing_spec(out_dir) == spec:
        return out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise ModelError(f"{out_dir} exists and is not a directory")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise ModelError(f"cannot write the tiny model to {out_dir}: {exc.strerror or exc}") from exc
    try:
        tokenizer = _build_tokenizer(work, spec)
        _build_model(work, tokenizer, spec)
        (work / MARKER_FILE).write_text(spec.model_dump_json(indent=1) + "\n")
        _replace_dir(work, out_dir)
    except OSError as exc:
        raise ModelError(f"cannot write the tiny model to {out_dir}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_dir


def model_size_bytes(model_dir: Path) -> int:
    """Total size of the regular files in a model directory."""
    return sum(p.stat().st_size for p in Path(model_dir).iterdir() if p.is_file())


def _existing_spec(out_dir: Path) -> TinyModelSpec | None:
    try:
        return TinyModelSpec.model_validate_json((out_dir / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished files of ``src`` into ``dst``; stale files of an older model are removed."""
    dst.mkdir(exist_ok=True)
    (dst / MARKER_FILE).unlink(missing_ok=True)  # invalid until the new marker lands, last
    for old in dst.iterdir():
        if old.is_file() and not (src / old.name).exists():
            old.unlink()
    for new in sorted(src.iterdir(), key=lambda p: p.name == MARKER_FILE):
        new.chmod(0o644)  # readable by the serving user even where it differs from the writer
        os.replace(new, dst / new.name)


def _corpus_files(limit_bytes: int) -> list[str]:
    """A deterministic list of local text files to train the tokenizer on: the stdlib's own sources."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))
    if not files:
        raise ModelError(f"no local text to train the tokenizer on (no *.py in {stdlib})")
    chosen: list[str] = []
    total = 0
    for path in files:
        chosen.append(str(path))
        total += path.stat().st_size
        if total > limit_bytes:
            break
    return chosen


def _build_tokenizer(out_dir: Path, spec: TinyModelSpec) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train(_corpus_files(spec.corpus_bytes), trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        unk_token="<|unk|>",
        additional_special_tokens=list(SPECIAL_TOKENS[4:]),
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = spec.max_position_embeddings
    fast.save_pretrained(str(out_dir))
    return fast


def _build_model(out_dir: Path, tok: Any, spec: TinyModelSpec) -> None:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    if spec.hidden_size % spec.num_heads:
        raise ModelError(f"hidden_size {spec.hidden_size} is not a multiple of num_heads {spec.num_heads}")
    torch.manual_seed(spec.seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.hidden_size * 2,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        head_dim=spec.hidden_size // spec.num_heads,
        max_position_embeddings=spec.max_position_embeddings,
        rms_norm_eps=1e-5,
        initializer_range=spec.init_range,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg).to(getattr(torch, spec.dtype))  # type: ignore[no-untyped-call]
    model.save_pretrained(str(out_dir), safe_serialization=True)
    GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    ).save_pretrained(str(out_dir))
    # transformers writes the dtype and its own version into config.json; keep the file stable.
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("transformers_version", None)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
