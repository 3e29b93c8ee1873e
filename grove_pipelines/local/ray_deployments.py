"""The Ray Serve deployments of a pipeline: one per Python stage, one per LLM stage, and the ingress.

* ``StageDeployment`` runs one Python stage's code; its own stage calls go to its callees' handles
  (the same executor as a stage pod: edges checked, timeouts, retries).
* ``LLMDeployment`` supervises the stage's vLLM workers and its router as child processes (started
  in ``__init__``, stopped in ``__del__``, checked by ``check_health``); callers reach the router over
  HTTP, as the pipeline server does in a pod.
* ``PipelineIngress`` is the pipeline server's own app (behind ``runtime.server.asgi``), built in the replica
  (``__serve_build_asgi_app__``) with a ``RayHandleTransport`` per Python stage.

Values cross handles JSON-encoded, exactly like the HTTP wire format, so a stage behaves the same
in-process, on a stage pod and on Ray; errors cross as ``(status, body)`` and are rebuilt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import serve

from grove_pipelines.loader import load_pipeline
from grove_pipelines.local.plan import LLMPlan
from grove_pipelines.sdk import Stage
from runtime.server.errors import PipelineRunError, StageFailedError, from_body
from runtime.server.executor import Executor
from runtime.server.value_codec import encode, result_decoder

__all__ = ["LLMDeployment", "PipelineIngress", "RayHandleTransport", "StageDeployment"]


class RayHandleTransport:
    """A Python stage served by a Ray Serve deployment: ``await handle.call.remote(...)``."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def call(
        self, stage: Stage, args: tuple[Any, ...], kwargs: dict[str, Any], *, caller: str, request_id: str
    ) -> Any:
        decoder = result_decoder(stage)
        ok, payload = await self.handle.call.remote(encode(list(args)), encode(kwargs), caller, request_id)
        if ok:
            return decoder.decode(payload)
        status, body = payload
        raise from_body(status, body, stage=stage.name, url=f"ray://{stage.name}")


def _executor(ref: str, stage_handles: dict[str, Any], llm_urls: dict[str, str]) -> Executor:
    transports = {name: RayHandleTransport(handle) for name, handle in stage_handles.items()}
    return Executor.from_loaded(load_pipeline(ref), llm_urls=llm_urls, transports=transports, environ={})


class StageDeployment:
    """One Python stage; calls it makes go to its callees' deployments."""

    def __init__(self, ref: str, stage: str, stage_handles: dict[str, Any], llm_urls: dict[str, str]) -> None:
        self.stage = stage
        self.executor = _executor(ref, stage_handles, llm_urls)
        self.executor.python_stage(stage)  # fail the deployment now if the stage is unknown
        for cold in self.executor.cold_class_stages([stage]):  # e.g. load the embedding model now
            cold.instantiate()

    async def call(
        self, args: list[Any], kwargs: dict[str, Any], caller: str, request_id: str
    ) -> tuple[bool, Any]:
        """Run the stage; ``(True, result)`` or ``(False, (status, error body))``."""
        try:
            result = await self.executor.serve_stage(
                self.stage, args, kwargs, caller=caller, request_id=request_id
            )
        except PipelineRunError as exc:
            return False, (exc.status, exc.body())
        except Exception as exc:  # noqa: BLE001  (a bug of ours must still name the stage)
            error = StageFailedError(
                f"stage {self.stage!r} failed: {type(exc).__name__}: {exc}", stage=self.stage
            )
            return False, (500, error.body())
        return True, encode(result)


class LLMDeployment:
    """Supervises one LLM stage's vLLM workers and router; callers use ``router_url``."""

    def __init__(self, plan: LLMPlan, model: str | None, log_dir: str, router_port: int) -> None:
        from grove_pipelines.local.runner import LocalStack

        self.stack = LocalStack(
            [plan], model=Path(model) if model else None, log_dir=Path(log_dir), progress=print
        )
        self.router_url = self.stack.start(router_ports={plan.stage: router_port})[plan.stage]

    def served_models(self) -> dict[str, str]:
        """Renames of the stage's model (attached workers serving another name)."""
        return dict(self.stack.served_models)

    def check_health(self) -> None:
        """Ray Serve calls this periodically: a dead worker or router fails the replica."""
        dead = self.stack.dead()
        if dead:
            raise RuntimeError(f"exited: {', '.join(dead)}")

    def __del__(self) -> None:
        stack = getattr(self, "stack", None)
        if stack is not None:
            stack.stop()


@serve.ingress()
class PipelineIngress:
    """The pipeline server (same app as in a pod) with Ray handles as its stage transports."""

    def __init__(
        self,
        ref: str,
        stage_handles: dict[str, Any],
        llm_urls: dict[str, str],
        llm_models: dict[str, str],
        llm_deployments: list[Any],
    ) -> None:
        self.ref = ref
        self.stage_handles = stage_handles
        self.llm_urls = llm_urls
        self.llm_models = llm_models
        self.llm_deployments = llm_deployments  # bound so Serve deploys them with the app

    def __serve_build_asgi_app__(self) -> Any:
        from runtime.server.app import PipelineApp
        from runtime.server.asgi import AsgiApp

        executor = _executor(self.ref, self.stage_handles, self.llm_urls)
        executor.llm.models.update(self.llm_models)
        return AsgiApp(PipelineApp([executor]))
