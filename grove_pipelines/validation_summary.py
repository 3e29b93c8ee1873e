"""A pydantic ``ValidationError`` as one line, ``field.path: message; ...``: for the CLI and the server's 400s."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["validation_summary"]


def validation_summary(exc: ValidationError, *, whole: str) -> str:
    """One ``field: message`` clause per problem; ``whole`` names the value itself when the problem is at its top."""
    clauses = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or whole
        clauses.append(f"{where}: {err['msg']}")
    return "; ".join(clauses)
