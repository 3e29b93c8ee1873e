"""The runtime's one HTTP layer, shared by the router sidecar and the pipeline server.

``listener`` (the server side: limits, deadlines, streaming with back-pressure, graceful drain),
``upstream`` (the keep-alive client pool to workers: timeouts, chunked decoding, abort by close),
``message`` (request and response objects), ``routes`` (one handler per endpoint), ``processes`` (several on one port), ``limits`` and ``errors`` (the JSON error shape), ``gc_tuning`` (collection
settings for a server once started), ``lazy_timer`` (the deadlines of both sides on one timer handle
each), ``header_names`` (header names decoded once), ``json_wire`` (the data plane's JSON codec) and
``sse_tail`` (whether a relayed event stream was whole, and how to end one that was not).
"""

from runtime.http.errors import HttpError, StreamBroken, error_body
from runtime.http.limits import ListenerLimits
from runtime.http.listener import Answering, Direct, Handler, HttpServer, Responder, bind_socket
from runtime.http.message import Request, Response, StreamingResponse
from runtime.http.processes import ProcessGroup
from runtime.http.routes import Routes
from runtime.http.upstream import AnswerSink, Sent, UpstreamPool, UpstreamReply, header_lines

__all__ = [
    "AnswerSink",
    "Answering",
    "Direct",
    "Handler",
    "HttpError",
    "HttpServer",
    "ListenerLimits",
    "ProcessGroup",
    "Request",
    "Responder",
    "Response",
    "Routes",
    "Sent",
    "StreamBroken",
    "StreamingResponse",
    "UpstreamPool",
    "UpstreamReply",
    "bind_socket",
    "error_body",
    "header_lines",
]
