"""Deploying pipelines to a Grove cluster: one module per verb, over a thin generic client.

``connect`` finds the cluster; ``manifests.prepare`` readies objects; ``deploy`` applies them
(server-side apply, frozen-composition check, ``/scale``), ``wait_ready`` follows them up,
``pipeline_status`` reads them back, ``diff`` compares, ``delete`` removes. ``kubernetes`` is imported
only inside this package, and its exceptions only in ``errors``.
"""

from __future__ import annotations

from grove_pipelines.kube.client import FIELD_MANAGER, KubeClient
from grove_pipelines.kube.config import connect
from grove_pipelines.kube.delete import delete
from grove_pipelines.kube.deploy import DeployResult, deploy
from grove_pipelines.kube.diff import DiffResult, diff
from grove_pipelines.kube.manifests import load_manifests, prepare
from grove_pipelines.kube.status import PipelineStatus, pipeline_status
from grove_pipelines.kube.wait import wait_ready

__all__ = [
    "FIELD_MANAGER",
    "DeployResult",
    "DiffResult",
    "KubeClient",
    "PipelineStatus",
    "connect",
    "delete",
    "deploy",
    "diff",
    "load_manifests",
    "pipeline_status",
    "prepare",
    "wait_ready",
]
