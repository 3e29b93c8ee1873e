"""The table of commands: each lives in its own module and exposes ``register(app)``.

Adding a command is one import and one line here.
"""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Attach every command module to the app (imports are local so `--help` stays fast)."""
    from grove_pipelines.cli import (
        compile_cmd,
        delete_cmd,
        deploy_cmd,
        diff_cmd,
        graph_cmd,
        model_cmd,
        router_cmd,
        run_cmd,
        serve_cmd,
        status_cmd,
        validate_cmd,
    )

    for module in (
        graph_cmd,
        compile_cmd,
        validate_cmd,
        run_cmd,
        deploy_cmd,
        status_cmd,
        diff_cmd,
        delete_cmd,
        serve_cmd,
        router_cmd,
        model_cmd,
    ):
        module.register(app)
