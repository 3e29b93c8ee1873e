"""`grove-pipelines run` with the local backend: vLLM workers, a router per LLM stage, the pipeline server.

Everything runs on this machine exactly as in the pods: the same router and the same pipeline
server (Python stages in its process, as when no ``GP_STAGE_URL_*`` is set). Startup order: bind the
port (a busy port fails before two minutes of vLLM start-up), launch every vLLM worker at once (they
load in parallel), wait for each with progress, start the routers, serve. SIGINT or SIGTERM, at any
point, stops everything this run started: each child runs in its own process group and is stopped
as a group (vLLM forks engine and worker processes).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from grove_pipelines.errors import RunError
from grove_pipelines.graph.build import build_graph
from grove_pipelines.loader import LoadedPipeline, load_pipeline
from grove_pipelines.local.plan import LLMPlan, example_body, model_max_len, plan_llms
from grove_pipelines.spec import router_flags as rf
from grove_pipelines.spec.tracing import otlp_traces_target
from runtime.engines.supervisor import ManagedProcess, free_port
from runtime.engines.vllm import VLLMConfig, VLLMProcess

__all__ = ["DEFAULT_MODEL_DIR", "LocalStack", "Progress", "ensure_model", "run_local", "served_model"]

Progress = Callable[[str], None]
DEFAULT_MODEL_DIR = Path(".cache/tiny-model")
_CPU_BIND = {"prefill": "0", "decode": "1", "aggregated": None}


class LocalStack:
    """The vLLM workers and routers of a pipeline's LLM stages, started and stopped together."""

    def __init__(
        self,
        plans: Sequence[LLMPlan],
        *,
        model: Path | None,
        log_dir: Path,
        progress: Progress,
        engine_timeout: float = 600.0,
    ) -> None:
        self.plans = list(plans)
        self.model = model
        self.log_dir = log_dir
        self.progress = progress
        self.engine_timeout = engine_timeout
        self.workers: dict[str, list[VLLMProcess]] = {}
        self.routers: dict[str, ManagedProcess] = {}
        self.router_urls: dict[str, str] = {}
        self.served_models: dict[str, str] = {}

    def start(self, router_ports: Mapping[str, int] | None = None) -> dict[str, str]:
        """Start every worker and router (on ``router_ports`` or free ports); returns each stage's router URL."""
        for plan in self.plans:
            if not plan.attach:
                self.workers[plan.stage] = [self._launch(plan, role) for role in plan.roles]
        starting = [w.name for workers in self.workers.values() for w in workers]
        if starting:
            self.progress(f"starting vLLM {', '.join(starting)} on {self.model}: about 1-2 minutes on a CPU")
        for workers in self.workers.values():
            for worker in workers:
                seconds = worker.wait_ready(self.engine_timeout, self._report(worker.name))
                self.progress(f"vLLM {worker.name} ready on {worker.url} after {seconds:.0f} s")
        for plan in self.plans:
            urls = list(plan.attach) or [w.url for w in self.workers[plan.stage]]
            if plan.attach:
                served = served_model(urls[-1])
                if served != plan.served_model_name:
                    self.served_models[plan.stage] = served
            port = (router_ports or {}).get(plan.stage) or free_port()
            self.router_urls[plan.stage] = self._start_router(plan, urls, port)
        return dict(self.router_urls)

    def dead(self) -> list[str]:
        """Names of started workers and routers that have exited."""
        procs: list[ManagedProcess | VLLMProcess] = [*self.routers.values()]
        procs += [w for workers in self.workers.values() for w in workers]
        return [p.name for p in procs if not p.running]

    def _launch(self, plan: LLMPlan, role: str) -> VLLMProcess:
        if self.model is None:
            raise RunError(f"LLM stage {plan.stage!r} needs a model directory (--model DIR)")
        # Field(...) defaults are invisible to mypy without the pydantic plugin.
        config = VLLMConfig(  # type: ignore[call-arg]
            model=self.model,
            served_model_name=plan.served_model_name,
            role=role,  # type: ignore[arg-type]
            cpu_bind=_CPU_BIND[role],
            max_model_len=plan.max_model_len,
            tracing=otlp_traces_target(os.environ),  # the OTEL_* this run was started with
        )
        worker = VLLMProcess(config, log_dir=self.log_dir, name=f"{plan.stage}-{role}")
        worker.launch()
        return worker

    def _report(self, name: str) -> Callable[[float, str], None]:
        def report(elapsed: float, line: str) -> None:
            self.progress(f"  {name}: {elapsed:.0f} s ... {line[-100:]}")

        return report

    def _start_router(self, plan: LLMPlan, worker_urls: Sequence[str], port: int) -> str:
        # vLLM on a busy 2-core machine can take seconds to answer /health: a short check timeout
        # would mark the workers down while they serve (the router's default suits pods).
        config = self.log_dir / f"{plan.stage}-router.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps({"health": {"timeout": 30.0, "interval": 5.0}}))
        argv = [
            sys.executable,
            "-m",
            "grove_pipelines.cli.main",
            rf.SUBCOMMAND,
            rf.HOST,
            "127.0.0.1",
            rf.PORT,
            str(port),
            rf.CONFIG,
            str(config),
        ]
        proc = ManagedProcess(
            argv + plan.router_args(worker_urls),
            env=dict(os.environ),
            log_path=self.log_dir / f"{plan.stage}-router.log",
            name=f"router of {plan.stage}",
        )
        self.routers[plan.stage] = proc
        proc.start()
        url = f"http://127.0.0.1:{port}"
        proc.wait_http_ok(f"{url}/ready", timeout=120)  # a worker passed the router's health check
        self.progress(f"router of {plan.stage} ready on {url} ({', '.join(worker_urls)})")
        return url

    def stop(self) -> None:
        """Stop routers, then workers (in parallel: each takes ~10 s to drain)."""
        procs: list[ManagedProcess | VLLMProcess] = [*self.routers.values()]
        procs += [w for workers in self.workers.values() for w in workers]
        threads = [threading.Thread(target=p.stop, daemon=True) for p in procs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def served_model(worker_url: str) -> str:
    """The model name an attached vLLM worker serves (requests are renamed to it)."""
    try:
        with urllib.request.urlopen(f"{worker_url}/v1/models", timeout=10) as resp:
            return str(json.load(resp)["data"][0]["id"])
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise RunError(f"--attach: cannot list the models of {worker_url}: {exc}") from exc


@contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C (KeyboardInterrupt) while we start; cleanup then ignores both."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def ensure_model(model: Path | None, progress: Progress) -> Path:
    if model is not None:
        if not (model / "config.json").is_file():
            raise RunError(
                f"--model {model}: not a model directory (no config.json); make one with `grove-pipelines tiny-model DIR`"
            )
        return model
    from grove_pipelines.local.tiny_model import write_tiny_model

    progress(f"no --model given: using the offline tiny model in {DEFAULT_MODEL_DIR}")
    return write_tiny_model(DEFAULT_MODEL_DIR)


def run_local(
    ref: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model: Path | None = None,
    attach: Mapping[str, Sequence[str]] | None = None,
    progress: Progress,
    announce: Progress,
) -> None:
    """Start the pipeline and its LLM stages here; serve until SIGINT or SIGTERM; leave nothing running."""
    from runtime.http import bind_socket
    from runtime.server.app import build_app
    from runtime.server.executor import Executor
    from runtime.server.pipeline_schema import input_model
    from runtime.server.serving import serve_forever

    loaded: LoadedPipeline = load_pipeline(ref)
    graph = build_graph(loaded.pipeline, loaded.stages())
    needs_model = any(not (attach or {}).get(s.name) for s in graph.llm_stages())
    model_dir = ensure_model(model, progress) if needs_model else model
    plans = plan_llms(graph, max_len=model_max_len(model_dir) if model_dir else 2048, attach=attach)
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise RunError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    url = f"http://{host}:{sock.getsockname()[1]}"
    stack = LocalStack(plans, model=model_dir, log_dir=Path(".cache/logs") / graph.name, progress=progress)
    try:
        with _interruptible():
            llm_urls = stack.start()
            executor = Executor.from_loaded(loaded, llm_urls=llm_urls, llm_models=stack.served_models)
            endpoint = f"{url}/v1/pipelines/{graph.name}"
            body = json.dumps(example_body(input_model(graph.name, loaded.pipeline.func).model_json_schema()))

            def ready() -> None:
                announce(f"pipeline {graph.name!r} is serving on {endpoint}")
                announce(f"try: curl -s {endpoint} -H 'Content-Type: application/json' -d '{body}'")
                progress(f"logs in {stack.log_dir}; Ctrl-C stops everything")

            cold = [s.name for s in executor.cold_class_stages()]
            if cold:
                progress(f"loading class stages: {', '.join(cold)}")
            serve_forever(build_app([executor], on_ready=ready), sock)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        progress("stopping: pipeline server, routers, vLLM workers")
        sock.close()
        stack.stop()
        progress("stopped")
