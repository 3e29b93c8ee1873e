"""``@stage``: a Python stage (tools, retrieval, glue) from an async function or a class."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, overload

from grove_pipelines.errors import DefinitionError
from grove_pipelines.sdk.invoke import current_invoker
from grove_pipelines.sdk.options import build_spec, default_name
from grove_pipelines.spec import Autoscaling, PythonStageSpec, Resources

__all__ = ["Stage", "stage"]


class Stage:
    """A Python stage: its spec, the user's function or class, and a call that goes through the runtime.

    ``await my_stage(x)`` runs the stage via the bound invoker (in-process by default). For a class,
    one instance is made on first use (per process, i.e. per replica) and its async ``__call__`` runs.
    """

    def __init__(
        self, target: Callable[..., Any] | type, spec: PythonStageSpec, depends_on: Sequence[object]
    ) -> None:
        self.target = target
        self.spec = spec
        self.depends_on = tuple(depends_on)
        self._instance: Any = None
        self._instance_lock = asyncio.Lock()
        # how a call runs, decided once (inspect's check costs about a microsecond per call)
        self._awaited_function = not isinstance(target, type) and inspect.iscoroutinefunction(target)
        functools.update_wrapper(self, target, updated=())

    @property
    def name(self) -> str:
        """The stage's name (its clique's name)."""
        return self.spec.name

    @property
    def is_class(self) -> bool:
        """Whether the stage is a class instantiated once per replica."""
        return isinstance(self.target, type)

    def callable(self) -> Callable[..., Any]:
        """What a call runs: the function, or the class's ``__call__`` (for its signature)."""
        return self.target.__call__ if isinstance(self.target, type) else self.target

    def signature(self) -> inspect.Signature:
        """The call signature (without ``self`` for classes): the stage's input schema."""
        sig = inspect.signature(self.callable())
        if self.is_class:
            params = list(sig.parameters.values())[1:]
            sig = sig.replace(parameters=params)
        return sig

    @property
    def instantiated(self) -> bool:
        """Whether a class stage's per-process instance exists (function stages need none)."""
        return not self.is_class or self._instance is not None

    def instantiate(self) -> Any:
        """Make the class stage's per-process instance now (servers do it at start-up: it often loads a
        model), so the first request does not pay for it. Blocking; returns the instance."""
        if self.is_class and self._instance is None:
            self._instance = self.target()
        return self._instance

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return await current_invoker().call_stage(self, args, kwargs)

    async def run_local(self, *args: Any, **kwargs: Any) -> Any:
        """Run the user's code in this process (what the stage's own server does)."""
        if self._awaited_function:
            return await self.target(*args, **kwargs)
        if self.is_class:
            if self._instance is None:
                async with self._instance_lock:
                    self.instantiate()
            result = self._instance(*args, **kwargs)
        else:
            result = await asyncio.to_thread(self.target, *args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    def __repr__(self) -> str:
        return f"<stage {self.name!r}>"


def _depends_on_names(
    stage_name: str, depends_on: Sequence[object], *, field: str = "depends_on", what: str = "stage"
) -> tuple[str, ...]:
    names = []
    for dep in depends_on:
        if isinstance(dep, str):
            names.append(dep)
        elif hasattr(dep, "spec") and hasattr(dep.spec, "name"):
            names.append(dep.spec.name)
        else:
            raise DefinitionError(
                f"{what} {stage_name!r}: {field}: {dep!r} is neither a stage nor a stage name",
                stage=stage_name,
                field=field,
            )
    return tuple(names)


@overload
def stage(target: Callable[..., Any] | type, /) -> Stage: ...
@overload
def stage(
    *,
    name: str | None = None,
    replicas: int = 1,
    min_available: int | None = None,
    resources: Resources | dict[str, Any] | None = None,
    image: str | None = None,
    env: dict[str, str] | None = None,
    autoscaling: Autoscaling | dict[str, Any] | None = None,
    depends_on: Sequence[object] = (),
    timeout_s: float | None = None,
    retries: int = 0,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Callable[[Callable[..., Any] | type], Stage]: ...


def stage(
    target: Callable[..., Any] | type | None = None,
    /,
    *,
    name: str | None = None,
    depends_on: Sequence[object] = (),
    **options: Any,
) -> Stage | Callable[[Callable[..., Any] | type], Stage]:
    """Declare a Python stage: ``@stage`` or ``@stage(replicas=2, resources={"cpu": "1"}, timeout_s=5)``.

    Options: ``replicas``, ``min_available`` (gang minimum), ``resources`` (cpu, memory, gpus), ``image``,
    ``env``, ``autoscaling`` (min/max replicas, target CPU), ``depends_on`` (stages called in ways the
    code scan cannot see), ``timeout_s`` and ``retries`` (applied by the runtime to every call).
    """
    if target is None:
        return functools.partial(stage, name=name, depends_on=depends_on, **options)
    if not (inspect.isfunction(target) or isinstance(target, type)):
        raise DefinitionError(f"@stage decorates an async function or a class, not {target!r}")
    stage_name = name or default_name(target.__name__)
    if isinstance(target, type) and not any("__call__" in vars(k) for k in target.__mro__[:-1]):
        raise DefinitionError(
            f"stage {stage_name!r}: a class stage needs an async __call__ method", stage=stage_name
        )
    options = {k: v for k, v in options.items() if v is not None}
    spec = build_spec(
        PythonStageSpec,
        "stage",
        stage_name,
        {
            **options,
            "depends_on": _depends_on_names(stage_name, depends_on),
            "is_class": isinstance(target, type),
            "module": target.__module__,
            "qualname": target.__qualname__,
        },
    )
    return Stage(target, spec, depends_on)
