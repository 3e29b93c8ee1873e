"""A test double of an OpenTelemetry collector: OTLP/HTTP with protobuf bodies, as the real protocol.

It answers ``POST /v1/traces`` with an ``ExportTraceServiceResponse`` and decodes every
``ExportTraceServiceRequest`` with OpenTelemetry's own generated protobuf classes
(``opentelemetry-proto``), gzip or not, keeping each span flat: what a real collector would store.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from pydantic import BaseModel

__all__ = ["CollectedSpan", "Collector", "otlp_collector"]

_MAX_BODY = 16 * 1024 * 1024


class CollectedSpan(BaseModel):
    """One received span; ids as lowercase hex."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    attributes: dict[str, Any]
    status: int


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return None if kind is None else getattr(any_value, kind)


class Collector:
    """The spans received so far (thread-safe), and the endpoint to point ``OTEL_EXPORTER_OTLP_ENDPOINT`` at."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._spans: list[CollectedSpan] = []
        self._lock = threading.Lock()
        self.requests = 0

    def add(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            attrs = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            service = str(attrs.get("service.name", ""))
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    found.append(
                        CollectedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex() or None,
                            name=span.name,
                            service=service,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            status=span.status.code,
                        )
                    )
        with self._lock:
            self.requests += 1
            self._spans += found

    def spans(self) -> list[CollectedSpan]:
        with self._lock:
            return list(self._spans)


@contextmanager
def otlp_collector() -> Iterator[Collector]:
    """A collector on a free loopback port for the duration of the block."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if self.path != "/v1/traces" or not 0 < length <= _MAX_BODY:
                self.send_error(404 if self.path != "/v1/traces" else 400)
                return
            raw = self.rfile.read(length)
            if self.headers.get("content-encoding") == "gzip":
                raw = gzip.decompress(raw)
            request = ExportTraceServiceRequest()
            request.ParseFromString(raw)
            collector.add(request)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    collector = Collector(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
