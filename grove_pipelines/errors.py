"""Every error grove-pipelines raises for a user's mistake or a cluster's refusal.

One base class, so the CLI can turn any of them into one clear line and a non-zero exit, and a
library user can catch them all at once::

    GrovePipelinesError
    ├── LoadError            REF names no file, module or pipeline; the user's module fails to import
    ├── DefinitionError      a decorator or llm() got an invalid option (carries stage and field)
    ├── GraphError           the stages do not form a valid pipeline graph
    │   └── CycleError       stages call each other in a cycle (carries the cycle)
    ├── CompileError         the graph cannot be mapped onto a PodCliqueSet
    ├── AdmissionError       Grove's webhook or the CRD schema would refuse the manifest (carries rule, path)
    │   └── ManifestRejectedError  several such problems at once (carries problems)
    ├── ManifestError        a manifest or CRD file cannot be read, parsed, or is not a Kubernetes object
    ├── ModelError           the offline demo model cannot be written
    ├── RunError             `grove-pipelines run` cannot start: bad option, port in use, no Ray
    └── KubeError            the cluster refused or could not be reached (see grove_pipelines.kube.errors)

Errors carry their context as attributes, not only inside the message.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AdmissionError",
    "CompileError",
    "CycleError",
    "DefinitionError",
    "GraphError",
    "GrovePipelinesError",
    "KubeError",
    "LoadError",
    "ManifestError",
    "ManifestRejectedError",
    "ModelError",
    "RunError",
]


class GrovePipelinesError(Exception):
    """Base of every error that is the user's input or the environment, never a bug of ours."""


class LoadError(GrovePipelinesError):
    """A pipeline reference could not be resolved: missing file, import failure, no or unknown pipeline."""


class DefinitionError(GrovePipelinesError):
    """A stage, llm() or pipeline was declared with an invalid option."""

    def __init__(self, message: str, *, stage: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.field = field


class GraphError(GrovePipelinesError):
    """The stages do not form a valid pipeline graph (duplicate or invalid names, unknown edges)."""


class CycleError(GraphError):
    """Stages call each other in a cycle; ``cycle`` lists the stage names in call order."""

    def __init__(self, cycle: Sequence[str], *, where: Sequence[str] = ()) -> None:
        self.cycle = list(cycle)
        self.where = list(where)
        path = " -> ".join([*self.cycle, self.cycle[0]])
        detail = f" ({'; '.join(self.where)})" if self.where else ""
        super().__init__(f"the pipeline graph has a cycle: {path}{detail}")


class CompileError(GrovePipelinesError):
    """The graph is valid but cannot be expressed as a Grove PodCliqueSet."""


class AdmissionError(GrovePipelinesError):
    """A manifest breaks a Grove webhook rule or the CRD schema; ``rule`` and ``path`` say which and where."""

    def __init__(self, message: str, *, rule: str, path: str) -> None:
        super().__init__(f"{path}: {message} [{rule}]")
        self.rule = rule
        self.path = path
        self.detail = message


class ManifestRejectedError(AdmissionError):
    """Several admission problems in one object; ``problems`` lists each (rule and path on every one)."""

    def __init__(self, subject: str, problems: Sequence[AdmissionError]) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        listed = "; ".join(str(p) for p in self.problems)
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        AdmissionError.__init__(
            self, f"{subject} rejected, {count}: {listed}", rule=first.rule, path=first.path
        )
        self.args = (f"{subject} rejected, {count}: {listed}",)


class ManifestError(GrovePipelinesError):
    """A manifest or CRD file cannot be read or parsed, or a document is not a Kubernetes object."""


class ModelError(GrovePipelinesError):
    """The offline demo model could not be generated."""


class RunError(GrovePipelinesError):
    """The local runner cannot start the pipeline: a bad option, a busy port, a missing backend."""


class KubeError(GrovePipelinesError):
    """The cluster refused a request or could not be reached; subclasses live in grove_pipelines.kube."""
