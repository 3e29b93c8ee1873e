"""The HTTP face of the double: a real server on 127.0.0.1 (ephemeral port) the official client talks to.

Speaks JSON over HTTP/1.1 with chunked watch streams, like kube-apiserver; injects faults on request
(``fail``), refuses verbs per RBAC (``forbid``), checks bearer tokens, and records every call
(``calls``) so tests can see that ``/scale`` was used.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from tests.kube.apiserver.api import Api, ApiStatus, Watch
from tests.kube.apiserver.proxy import PodProxy
from tests.kube.apiserver.selectors import match_fields, match_labels
from tests.kube.apiserver.store import Store

__all__ = ["Fault", "HttpDouble"]


@dataclass
class Fault:
    """Answer the next ``times`` matching requests with ``status`` (a Status body, or ``text`` verbatim)."""

    method: str | None
    path_contains: str
    status: int
    times: int = 1
    retry_after: int | None = None
    text: str | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _reply(
        self, code: int, data: Any, extra: dict[str, str] | None = None, raw: str | None = None
    ) -> None:
        body = raw.encode() if raw is not None else json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _serve(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        double = self.server.double
        fault = double.take_fault(self.command, url.path)
        if fault is not None:
            double.api.calls.append((self.command, url.path, query))
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            if fault.text is not None:
                return self._reply(fault.status, None, extra, raw=fault.text)
            status = ApiStatus(
                fault.status,
                "InternalError" if fault.status >= 500 else "TooManyRequests",
                f"injected fault {fault.status}",
            )
            return self._reply(fault.status, status.body(), extra)
        if double.proxy.matches(url.path):
            try:
                answer = double.proxy.handle(self.command, url.path, query, headers, body)
            except ApiStatus as exc:
                return self._reply(exc.code, exc.body())
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
            return None
        try:
            result = double.api.handle(self.command, url.path, query, headers, body)
        except ApiStatus as exc:
            return self._reply(exc.code, exc.body())
        if isinstance(result, Watch):
            return self._watch(result)
        self._reply(200 if self.command != "POST" else 201, result)

    def _watch(self, w: Watch) -> None:
        """A chunked event stream as kube-apiserver sends it: the initial state when asked from version 0,
        ``ERROR`` 410 for a compacted version, ``DELETED``/``ADDED`` when an object leaves or enters the
        selector, and ``BOOKMARK`` events (when allowed) while idle and before the stream ends."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        store = self.server.double.store
        deadline = time.monotonic() + w.timeout
        last = w.rv

        def send(kind: str, obj: dict[str, Any]) -> None:
            line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()

        def matches(obj: dict[str, Any] | None) -> bool:
            if obj is None:
                return False
            meta = obj["metadata"]
            if w.namespace and meta.get("namespace") != w.namespace:
                return False
            return match_labels(w.label_selector, meta.get("labels")) and match_fields(w.field_selector, obj)

        def bookmark() -> None:
            mark = {
                "kind": w.kind.kind,
                "apiVersion": w.kind.api_version,
                "metadata": {"resourceVersion": str(last)},
            }
            send("BOOKMARK", mark)

        try:
            if w.expired:
                status = ApiStatus(410, "Expired", f"too old resource version: {w.rv} ({store.compacted_rv})")
                send("ERROR", status.body())
                self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True
                return
            if w.initial:
                for obj in store.items(w.kind.rid, w.namespace):
                    if matches(obj):
                        send("ADDED", obj)
            idle_since = time.monotonic()
            while True:
                with store.cond:
                    pending = store.since(last)
                    if not pending:
                        left = deadline - time.monotonic()
                        if left <= 0 or store.closed:
                            break
                        store.cond.wait(min(left, 0.5))
                        if w.bookmarks and time.monotonic() - idle_since >= 1.0:
                            bookmark()
                            idle_since = time.monotonic()
                        continue
                    last = pending[-1].rv
                idle_since = time.monotonic()
                for event in pending:
                    if event.rid != w.kind.rid:
                        continue
                    now_in, was_in = matches(event.obj), matches(event.old)
                    if event.type == "MODIFIED" and was_in and not now_in:
                        send("DELETED", event.obj)  # left the selector
                    elif event.type == "MODIFIED" and now_in and not was_in:
                        send("ADDED", event.obj)  # entered it
                    elif now_in:
                        send(event.type, event.obj)
            if w.bookmarks:
                bookmark()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    double: HttpDouble


class HttpDouble:
    """Owns the store, the REST semantics and the listening socket."""

    def __init__(self, store: Store, api: Api) -> None:
        self.store = store
        self.api = api
        self.proxy = PodProxy(api)
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.double = self
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="apiserver-double",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.store.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail(
        self,
        path_contains: str,
        status: int,
        *,
        method: str | None = None,
        times: int = 1,
        retry_after: int | None = None,
        text: str | None = None,
    ) -> None:
        """Inject a fault for the next ``times`` requests whose path contains ``path_contains``."""
        with self._lock:
            self.faults.append(Fault(method, path_contains, status, times, retry_after, text))

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and path_matches(fault, method, path):
                    fault.times -= 1
                    return fault
        return None

    def write_kubeconfig(
        self, path: Path, *, namespace: str = "default", token: str | None = None, server: str | None = None
    ) -> Path:
        """A kubeconfig whose one context points the official client at this double."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": server or self.url}}],
            "users": [{"name": "tester", "user": {"token": token or "double-token"}}],
            "contexts": [
                {"name": "double", "context": {"cluster": "double", "user": "tester", "namespace": namespace}}
            ],
        }
        path.write_text(yaml.safe_dump(config))
        return path


def path_matches(fault: Fault, method: str, path: str) -> bool:
    return (fault.method is None or fault.method == method) and fault.path_contains in path
