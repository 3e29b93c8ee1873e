"""What the webhook rules report into: errors, and warnings for this project's own stricter rules.

Rules Grove has are errors (``add``). Rules only this project has (clique names that are DNS labels and
not suffixes of each other, PodClique and hostname lengths, a non-empty ``roleName``, no ``GROVE_*``
variables) go through ``project``: errors for the compiler's own output (``strict``), warnings on
anyone else's manifest, so ``validate`` never refuses what Grove admits.
"""

from __future__ import annotations

from grove_pipelines.errors import AdmissionError

__all__ = ["Problems"]


class Problems:
    """Collects errors and warnings; ``strict`` turns the project's own rules into errors."""

    def __init__(self, *, strict: bool = False) -> None:
        self.items: list[AdmissionError] = []
        self.warnings: list[AdmissionError] = []
        self.strict = strict

    def add(self, rule: str, path: str, message: str) -> None:
        self.items.append(AdmissionError(message, rule=rule, path=path))

    def project(self, rule: str, path: str, message: str) -> None:
        """A rule of this project, not of Grove: an error in strict mode, else a warning."""
        target = self.items if self.strict else self.warnings
        target.append(AdmissionError(message, rule=rule, path=path))

    def sorted(self) -> list[AdmissionError]:
        return sorted(self.items, key=lambda p: p.path)
