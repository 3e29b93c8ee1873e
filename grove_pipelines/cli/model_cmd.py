"""`grove-pipelines tiny-model DIR`: write the offline demo model (random-weight Llama, local tokenizer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def tiny_model(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the model into (created if missing).")],
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
) -> None:
    """Write the tiny model vLLM serves in local runs and tests; reuses DIR if it already holds it."""
    from grove_pipelines.local.tiny_model import model_size_bytes, write_tiny_model

    path = write_tiny_model(out_dir, seed=seed)
    typer.echo(f"tiny model in {path} ({model_size_bytes(path) / 1e6:.1f} MB)")


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("tiny-model")(tiny_model)
