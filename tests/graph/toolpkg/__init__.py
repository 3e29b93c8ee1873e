"""A user package whose pipeline reaches every stage only through helpers, registries and methods.

The acceptance fixture of the reference scan: ``app`` (the pipeline) calls helpers in ``helpers``
(another module of this package), which reach the stages of ``tools`` at depth 3, through dict, list
and nested registries, partials, lambdas, closures, defaults, wrappers, a namespace, a dataclass,
static/class methods and a bound method. ``EXPECTED`` lists the edges a correct scan finds.
"""

from __future__ import annotations

__all__ = ["EXPECTED"]

EXPECTED = {
    ("frontend", "search"),
    ("frontend", "rerank"),
    ("frontend", "calc"),
    ("frontend", "loop-tool-0"),
    ("frontend", "loop-tool-1"),
    ("frontend", "loop-tool-2"),
    ("frontend", "fmt"),
    ("frontend", "weather"),
    ("frontend", "units"),
    ("frontend", "shout"),
    ("frontend", "echo"),
    ("frontend", "summarize"),
    ("frontend", "grade"),
    ("frontend", "plan"),
    ("frontend", "chat"),
    ("plan", "calc"),
    ("plan", "fmt"),  # the whole registry is reached, its nested partial included
    ("frontend", "dated"),
    ("frontend", "captured"),
}
