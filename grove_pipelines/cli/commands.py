"""The table of commands: each lives in its own module and exposes ``register(app)``.

Adding a command is one import and one line here.
"""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Attach every command module to the app (imports are local so `--help` stays fast)."""
    from grove_pipelines.cli import graph_cmd, model_cmd

    graph_cmd.register(app)
    model_cmd.register(app)
