"""The `grove-pipelines` command: one typer app, one module per command, one error handler.

Commands only declare options and call one library function. Library code raises
``GrovePipelinesError`` and never prints or exits; ``main`` turns it into one ``error: ...`` line and
exit code 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from grove_pipelines.cli import commands
from grove_pipelines.errors import GrovePipelinesError
from grove_pipelines.validation_summary import validation_summary

__all__ = ["app", "main"]

app = typer.Typer(
    name="grove-pipelines",
    help="Multi-model and agentic inference pipelines as decorated Python, on NVIDIA Grove.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
commands.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app, map user errors to one stderr line and exit code 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    try:
        app(args=args)  # standalone: click reports usage errors itself and exits
    except GrovePipelinesError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except ValidationError as exc:
        if debug:
            raise
        print(f"error: {validation_summary(exc, whole='(input)')}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
