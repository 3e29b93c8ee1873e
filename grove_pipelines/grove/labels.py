"""The labels the compiler puts on every clique template, and the pod selectors built from them.

Grove names a pod's PodClique ``<pcs>-<i>-<clique>``, so a selector on ``grove.io/podclique`` finds the
pods of one PodCliqueSet replica only. Pods also inherit their clique template's ``labels``
(grove-runtime.md §3.1), and Grove gives every pod ``app.kubernetes.io/part-of: <pcs>``; the
compiler's own ``grove-pipelines.io/stage`` beside it finds a stage's pods in every replica. The keys
live under the compiler's own prefix, which pipelines may not use in their ``labels``: Grove's keys
win over same-named template keys, the compiler's keys win over the user's.
"""

from __future__ import annotations

from grove_pipelines.spec.models import COMPILER_LABEL_PREFIX

__all__ = ["PART_OF", "ROLE_LABEL", "STAGE_LABEL", "stage_pods"]

STAGE_LABEL = f"{COMPILER_LABEL_PREFIX}stage"
"""On every clique template: the name of the stage (``frontend`` for the pipeline server) it serves."""
ROLE_LABEL = f"{COMPILER_LABEL_PREFIX}role"
"""On every clique template: what its pods do (``entry``, ``python``, ``serve``, ``prefill``, ``decode``)."""
PART_OF = "app.kubernetes.io/part-of"
"""Grove puts it on every pod of the PodCliqueSet, valued with the PodCliqueSet's name."""


def stage_pods(pcs: str, stage: str) -> dict[str, str]:
    """The labels of every pod of ``stage`` in every replica of PodCliqueSet ``pcs``, and of no other."""
    return {PART_OF: pcs, STAGE_LABEL: stage}
