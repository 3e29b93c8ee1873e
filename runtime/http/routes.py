"""Dispatch by method and path to one handler per endpoint; unknown paths 404, wrong methods 405.

A pattern is a fixed path, or a fixed prefix ending in one ``{param}`` segment
(``/v1/pipelines/{name}``), whose value the handler finds in ``request.params``. Lookup is one dict
probe for fixed paths, then one per parameterised prefix: no regular expressions on the hot path.
"""

from __future__ import annotations

from runtime.http.errors import HttpError
from runtime.http.listener import Handler
from runtime.http.message import Request, Response, StreamingResponse

__all__ = ["Routes"]


class Routes:
    """A handler (for :class:`~runtime.http.HttpServer`) built from ``add(method, pattern, handler)``."""

    def __init__(self) -> None:
        self._fixed: dict[str, dict[str, Handler]] = {}
        self._param: list[tuple[str, str, dict[str, Handler]]] = []  # (prefix, param name, by method)

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve ``method pattern`` with ``handler``."""
        head, sep, last = pattern.rpartition("/")
        if last.startswith("{") and last.endswith("}"):
            prefix = head + sep
            for known, name, methods in self._param:
                if known == prefix and name == last[1:-1]:
                    methods[method] = handler
                    return
            self._param.append((prefix, last[1:-1], {method: handler}))
        elif "{" in pattern:
            raise ValueError(f"only a final {{param}} segment is supported: {pattern!r}")
        else:
            self._fixed.setdefault(pattern, {})[method] = handler

    def _by_method(self, request: Request) -> dict[str, Handler] | None:
        methods = self._fixed.get(request.path)
        if methods is not None:
            return methods
        for prefix, name, by_method in self._param:
            if request.path.startswith(prefix):
                value = request.path[len(prefix) :]
                if value and "/" not in value:
                    request.params[name] = value
                    return by_method
        return None

    def find(self, request: Request) -> Handler:
        """The handler of ``request`` (its path parameters filled in); ``HttpError`` 404 or 405 when none.

        An app that awaits ``find(request)(request)`` itself saves the coroutine :meth:`__call__` is.
        """
        methods = self._by_method(request)
        if methods is None:
            raise HttpError(404, f"no such endpoint: {request.path[:200]}", "not_found_error")
        handler = methods.get(request.method)
        if handler is None:
            raise HttpError(405, f"{request.method[:16]} is not allowed here", "invalid_request_error")
        return handler

    async def __call__(self, request: Request) -> Response | StreamingResponse:
        return await self.find(request)(request)
