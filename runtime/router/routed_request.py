"""One client completion request, from its body to its answer's last byte, driven by callbacks.

The listener hands the request over from its parser's last callback (:data:`runtime.http.Direct`);
everything after happens in callbacks too: admission, planning a route, the legs (each sent with
:meth:`~runtime.http.upstream.UpstreamPool.send`, whose connection calls this object back as the
answer arrives), retries (a timer), and the answer relayed to the client's connection as it comes.
No coroutine is made for a request that needs no waiting of its own; a queued admission and a
prefill leg (:func:`~runtime.router.legs.start_prefill`) run as tasks that call back when done.

The failure policy and the protocol of the legs are :mod:`runtime.router.legs`'; this object is
their one driver. It holds an admission slot, then a worker's in-flight count (a
:class:`~runtime.router.legs.Load`) while a leg is out, and gives every one of them back in
:meth:`RoutedRequest.end`, which counts the request once, whatever ended it: the answer's end, an
error, the client leaving or a stream's client that stopped reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime.errors import UpstreamError, UpstreamUnreachable
from runtime.http import Request, Responder
from runtime.http.errors import INTERNAL_ERROR
from runtime.http.json_wire import encode_json
from runtime.http.sse_tail import SseTail
from runtime.http.upstream import Sent
from runtime.router.admission import Rejected
from runtime.router.answer_error import JSON, Header, HTTPError
from runtime.router.legs import (
    HANDOFF_MS,
    PATHS,
    LegIds,
    Load,
    PassThrough,
    Prefilled,
    abandon_kv,
    backoff_delay,
    decode_body,
    failed_on,
    leg_span,
    may_retry,
    note_cached_tokens,
    short_reason,
    start_prefill,
)
from runtime.router.policies import RequestView, prompt_work
from runtime.router.router import ROUTE_HEADER, Route
from runtime.router.session_headers import SESSION_HEADER
from runtime.router.workers import Worker
from runtime.tracing import TRACEPARENT, Span, parse_traceparent, start_span
from runtime.tracing.context import reset_current, set_current

if TYPE_CHECKING:
    from runtime.router.app import RouterApp

__all__ = ["RoutedRequest"]

log = logging.getLogger("grove.router")

SPAN_NAMES = {"completions": "router completions", "chat": "router chat"}

# what the answering leg's answer is, once its head is in
_FAILING = 1  # a 5xx: read (for the log) and then retried
_PASSING = 2  # a 4xx: the client's problem, handed over as it is
_WHOLE = 3  # the answer, sent whole when it ends
_STREAM = 4  # the answer, relayed chunk by chunk
_DETAIL = 200  # bytes of a failed answer kept for the log


class RoutedRequest:
    """A completion request on its way through the router; see the module's docstring."""

    __slots__ = (
        "_answering",
        "_attempt_no",
        "_body",
        "_ctype",
        "_ended",
        "_exclude",
        "_first",
        "_headers",
        "_headers_out",
        "_held",
        "_ids",
        "_leg",
        "_leg_span",
        "_leg_started",
        "_load",
        "_lost",
        "_mode",
        "_notes",
        "_parts",
        "_prefilled_at",
        "_req",
        "_request_id",
        "_route",
        "_sent",
        "_size",
        "_status",
        "_tail",
        "_task",
        "_timer",
        "_worker",
        "admitted",
        "app",
        "endpoint",
        "ok",
        "responder",
        "router",
        "series",
        "span",
        "started",
        "status",
    )

    def __init__(self, app: RouterApp, endpoint: str, responder: Responder) -> None:
        self.app, self.router, self.endpoint, self.responder = app, app.router, endpoint, responder
        self.series = app.router.metrics.endpoint(endpoint)
        self.started = time.perf_counter()
        self.admitted = False
        self.ok = False  # the worker's answer reached the client whole
        self.status = 499  # what the metrics count if the client leaves first
        self.span: Span | None = None
        self._ended = False
        self._answering = False  # the answering leg's head is in and the client is being answered
        self._body: dict[str, Any] = {}
        self._headers: dict[str, str] = {}
        self._request_id = ""
        self._req: RequestView | None = None
        self._ids: LegIds | None = None
        self._exclude: set[str] = set()
        self._notes: list[str] = []
        self._attempt_no = 0
        self._held: Prefilled | None = None  # prefilled KV no decode leg has taken yet
        self._route: Route | None = None
        self._worker: Worker | None = None
        self._leg = "worker"
        self._load: Load | None = None
        self._leg_span: Span | None = None
        self._leg_started = 0.0
        self._prefilled_at: float | None = None
        self._lost: asyncio.Future[None] | None = None  # resolves if the decode leg's KV source is lost
        self._sent: Sent | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._headers_out: list[Header] = []
        self._mode = 0
        self._status = 0
        self._ctype = "application/json"
        self._parts: list[bytes] = []
        self._size = 0
        self._first = True
        self._tail: SseTail | None = None

    # -- from the request to its admission -------------------------------------------------------
    def start(self, request: Request) -> None:
        """Parse, admit and route ``request`` (answered at once when it is refused)."""
        app, router = self.app, self.router
        self.responder.follow(self)
        self.span = start_span(
            SPAN_NAMES[self.endpoint],
            parent=parse_traceparent(request.headers.get(TRACEPARENT)),
            kind="server",
        )
        try:
            self._body = app.parse(request.body, self.endpoint)
            self._headers, self._request_id = app.leg_headers(request)
        except HTTPError as exc:
            self._error(exc)
            return
        if router.admission.admit_now():
            self.admitted = True
            self._route_it()
            return
        token = set_current(self.span)  # what the task logs and traces is under the request
        try:
            self._task = asyncio.get_running_loop().create_task(router.admission.acquire())
        finally:
            reset_current(token)
        self._task.add_done_callback(self._admission_done)

    def _admission_done(self, task: asyncio.Task[None]) -> None:
        self._task = None
        if task.cancelled():
            return
        exc = task.exception()
        if self._ended:  # the client left as the slot came
            if exc is None:
                self.router.admission.release()
            return
        if isinstance(exc, Rejected):
            kind = "rate_limit_error" if exc.status == 429 else "service_unavailable"
            self._error(HTTPError(exc.status, exc.message, kind, self._retry_after()))
            return
        if exc is not None:
            self._crashed(exc)
            return
        self.admitted = True
        self._route_it()

    def _route_it(self) -> None:
        app = self.app
        session = self._headers.pop(SESSION_HEADER, None) or None
        # why the policy chose is written only for those who will read it: the route header, a recorded span
        explain = app.shows_route or (self.span is not None and self.span.recording)
        self._req = RequestView(self.endpoint, self._body, session, explain=explain)  # type: ignore[arg-type]
        self._ids = LegIds(self._headers["X-Request-Id"])
        self._attempt()

    # -- one attempt: plan, prefill, the answering leg -------------------------------------------
    def _attempt(self) -> None:
        """Plan a route (without the workers that failed) and start its legs."""
        self._timer = None
        if self._ended:
            return
        router, req = self.router, self._req
        assert req is not None
        route = router.plan(req, self._exclude)
        if route is None and self._exclude:  # no other worker left: the failed ones get another (bounded) try
            route = router.plan(req)
        if route is None:
            self._drop_held("expiring")
            if self._attempt_no:
                last = self._notes[-1] if self._notes else "?"
                self._error(
                    self.app.upstream_error(UpstreamError(f"every worker failed; last: {last}", url=""))
                )
            else:
                message = f"no healthy worker serves model {req.model!r}"
                self._error(HTTPError(503, message, "service_unavailable", self._retry_after()))
            return
        route.notes = self._notes
        kv: dict[str, Any] | None = None
        held = self._held
        if held is not None and route.mode != "aggregated" and held.fresh(router.config.timeouts.kv_lease):
            route.mode, route.prefill, route.kind = "disaggregated", held.worker, "reused-kv"
            self._notes.append(f"reused the KV prefilled on {held.worker.url}")
            router.metrics.of(router.metrics.kv_abandoned, "reused").inc()
            kv = held.params
        else:
            abandon_kv(router, held, "expiring")
        self._held = None
        router.commit(route, req)
        self._route = route
        if kv is None and route.prefill is not None:
            assert self._ids is not None
            token = set_current(self.span)  # the prefill leg's span (and traceparent) is under the request's
            try:
                self._task = start_prefill(router, req, route, self._headers, PATHS[self.endpoint], self._ids)
            finally:
                reset_current(token)
            self._task.add_done_callback(self._prefill_done)
            return
        self._send_leg(kv, None)

    def _prefill_done(self, task: asyncio.Task[dict[str, Any] | None]) -> None:
        self._task = None
        if task.cancelled() or self._ended:
            return
        exc = task.exception()
        if isinstance(exc, PassThrough):  # a prefill worker's 4xx: the client's problem
            self._pass_through(exc.status, exc.body, exc.content_type)
            return
        if exc is not None:
            self._crashed(exc)
            return
        kv = task.result()
        route = self._route
        assert route is not None
        prefilled_at = None
        if kv is not None and route.prefill is not None:
            self._held = Prefilled(route.prefill, kv)
            prefilled_at = self._held.at
        self._send_leg(kv, prefilled_at)

    def _send_leg(self, kv: dict[str, Any] | None, prefilled_at: float | None) -> None:
        """Send the answering leg (decode, or aggregated); its answer comes back through the ``answer_*`` callbacks."""
        router, route, req, ids = self.router, self._route, self._req, self._ids
        assert route is not None and req is not None and ids is not None
        source = route.prefill if kv is not None else None  # the worker holding this request's KV
        body = decode_body(req.body, kv) if kv is not None else req.body
        worker = self._worker = route.worker
        leg = self._leg = "worker" if route.mode == "aggregated" else "decode"
        leg_id = ids.next(leg)
        headers = {**self._headers, "X-Request-Id": leg_id}
        prompt = prompt_work(req, worker)  # until its first token; then only its output
        self._load = Load(router, worker, prompt + req.max_tokens, prompt)
        self._leg_started = time.perf_counter()
        self._prefilled_at = prefilled_at
        span = self._leg_span = leg_span(leg, worker, route, leg_id, parent=self.span)
        if source is not None:
            span.set("grove.kv_source", source.url)
        self._mode, self._status, self._parts, self._size = 0, 0, [], 0
        try:
            sent = router.upstream.send(
                "POST",
                worker.url + PATHS[self.endpoint],
                encode_json(body),
                headers,
                self,
                trace=span if span.trace_id else None,
            )
        except UpstreamError as exc:
            self._leg_failed(exc)
            return
        if sent.done:  # failed as it was sent: already handled
            return
        self._sent = sent
        if source is not None:  # until the answer's head: a lost KV source would leave it waiting
            self._lost = source.lost()
            self._lost.add_done_callback(self._source_lost)

    def _source_lost(self, lost: asyncio.Future[None]) -> None:
        """The prefill worker holding the decode leg's KV was seen gone before the answer began."""
        if lost is not self._lost or self._ended:
            return
        self._lost = None
        sent, self._sent = self._sent, None
        if sent is not None:
            sent.abort()  # vLLM aborts the decode request and frees its blocks
        url = self._route.prefill.url if self._route is not None and self._route.prefill is not None else "?"
        self._end_leg("KV source lost")
        self._held = None
        self._notes.append(f"planned again: prefill {url} was lost holding the KV")
        self.router.metrics.of(self.router.metrics.kv_abandoned, "lost").inc()
        self._attempt_no += 1
        if not may_retry(self.router, self._attempt_no, self._leg):
            self._error(
                self.app.upstream_error(UpstreamError(f"prefill {url} was lost holding the KV", url=url))
            )
            return
        self._attempt()

    def _stop_watching(self) -> None:
        lost, self._lost = self._lost, None
        if lost is not None:
            lost.remove_done_callback(self._source_lost)

    # -- the answering leg's answer (AnswerSink) -------------------------------------------------
    def answer_head(self, status: int, headers: Mapping[str, str]) -> None:
        """The worker's status and headers: a failure to retry, a 4xx to hand over, or the answer."""
        self._stop_watching()
        assert self._leg_span is not None
        self._leg_span.set("http.response.status_code", status)
        self._status, self._ctype = status, headers.get("content-type", "application/json")
        if status >= 500:
            self._mode = _FAILING
            return
        router = self.router
        router.metrics.of(router.metrics.leg_latency, self._leg).observe(
            time.perf_counter() - self._leg_started
        )
        if status >= 400:
            self._mode = _PASSING
            return
        self._answering = True
        route, app = self._route, self.app
        assert route is not None
        span = self.span
        if span is not None and span.recording:
            for key, value in (
                ("mode", route.mode),
                ("policy", route.policy),
                ("reason", route.reason[:512]),
                ("kind", route.kind),
                ("worker", route.worker.url),
                ("retries", len(route.notes)),
            ):
                span.set(f"grove.route.{key}", value)
            span.set("grove.route.prefill", route.prefill.url if route.prefill is not None else None)
        self._headers_out = [(b"x-request-id", self._request_id.encode("latin-1"))]
        if app.shows_route:
            self._headers_out.append((ROUTE_HEADER.encode(), route.header(router.process).encode("latin-1")))
        if self._body.get("stream"):
            self._mode, self._tail = _STREAM, SseTail()
            self.responder.open_stream(status, self._ctype.encode("latin-1"), self._headers_out)
        else:
            self._mode = _WHOLE

    def answer_body(self, data: bytes) -> None:
        """A piece of the answer: relayed at once when streamed, else kept until the end."""
        if self._mode == _STREAM:
            if self._first:
                self._first = False
                self._first_token()
            assert self._leg_span is not None and self._tail is not None
            note_cached_tokens(self._leg_span, data)  # vLLM writes each event, its usage too, whole
            self._tail.feed(data)
            self.responder.stream(data)
            return
        self._size += len(data)
        limit = self.router.upstream.max_answer
        if self._size > limit:  # a worker's answer is bounded as a client's body is
            sent, self._sent = self._sent, None
            if sent is not None:
                sent.abort()
            url = self._worker.url if self._worker is not None else "?"
            self.answer_failed(
                UpstreamError(f"{url}: the answer is over {limit} bytes", url=url, started=True)
            )
            return
        if self._mode != _FAILING or self._size - len(data) < _DETAIL:
            self._parts.append(data)

    def answer_end(self) -> None:
        """The answer ended whole."""
        self._sent = None
        mode, status, worker = self._mode, self._status, self._worker
        assert worker is not None
        data = b"".join(self._parts)
        self._parts = []
        if mode == _FAILING:
            detail = data[:_DETAIL].decode(errors="replace")
            self._leg_failed(
                UpstreamError(f"{worker.url}: HTTP {status}: {detail}", url=worker.url, status=status)
            )
        elif mode == _PASSING:
            self._drop_held("released")  # vLLM frees a rejected decode request's remote KV
            self._end_leg(None)  # a worker's 4xx, passed on: the leg itself did not fail
            self._pass_through(status, data, self._ctype)
        elif mode == _WHOLE:
            self._first_token()
            assert self._leg_span is not None
            note_cached_tokens(self._leg_span, data)
            self.ok = status < 500
            self.end(status)
            self.responder.answer(status, data, self._ctype.encode("latin-1"), self._headers_out)
        else:
            self.ok, self.status = True, status
            self.responder.close_stream()
            self.end(status)

    def answer_failed(self, error: UpstreamError) -> None:
        """The leg failed: before anything reached the client it is retried; a broken stream says so."""
        self._sent = None
        self._stop_watching()
        if self._ended:
            return
        if not self._answering:
            self._leg_failed(error)
            return
        worker = self._worker.url if self._worker is not None else "?"
        if self._mode == _WHOLE:  # nothing sent yet: a clean error answer
            log.warning("answer from %s failed: %s", worker, error)
            self._error(self.app.upstream_error(error))
            return
        assert self._tail is not None
        if self._tail.done:  # the answer was whole: only the framing's end is missing
            self.ok, self.status = True, self._status
            self.responder.close_stream()
            self.end(self._status)
            return
        log.warning("stream from %s broke off: %s", worker, error)
        failure = self.app.upstream_error(error)
        self.status = failure.status
        self.responder.stream(self._tail.error_event(failure.body()))
        self.responder.break_stream()  # ended short: no client takes it for a complete answer
        self.end(failure.status)

    def _leg_failed(self, exc: UpstreamError) -> None:
        """Legs policy: the worker's failure is counted, and the request planned again without it (bounded)."""
        router, worker = self.router, self._worker
        assert worker is not None
        why = f"{type(exc).__name__}: HTTP {exc.status}" if exc.status else type(exc).__name__
        self._end_leg(why)
        if not isinstance(exc, UpstreamUnreachable):
            self._drop_held("expiring")  # the decode worker may have started pulling it
        failed_on(router, worker, exc)
        self._exclude.add(worker.url)
        self._notes.append(f"retry after {self._leg} {worker.url} failed ({short_reason(exc)})")
        self._attempt_no += 1
        if not may_retry(router, self._attempt_no, self._leg):
            self._drop_held("expiring")
            self._error(self.app.upstream_error(exc))
            return
        retry = router.config.retry
        delay = backoff_delay(retry.backoff_base, retry.backoff_max, self._attempt_no)
        self._timer = asyncio.get_running_loop().call_later(delay, self._attempt)

    # -- the client's side (Answering) -----------------------------------------------------------
    def client_gone(self) -> None:
        """The client disconnected: everything out is called back (vLLM aborts what it was doing)."""
        if self._ended:
            return
        self.router.metrics.of(self.router.metrics.client_aborts, "disconnect").inc()
        self._abandon("cancelled")

    def client_stalled(self) -> None:
        """A stream's client stopped reading past the write-stall deadline; the listener cuts it."""
        if self._ended:
            return
        log.warning("a client stopped reading its stream; cancelled")
        self.router.metrics.of(self.router.metrics.client_aborts, "stopped-reading").inc()
        self._abandon("cancelled")

    def client_paused(self) -> None:
        """The client's socket is full: stop reading the worker's answer (back-pressure to vLLM)."""
        if self._sent is not None:
            self._sent.pause()

    def client_resumed(self) -> None:
        """The client reads again."""
        if self._sent is not None:
            self._sent.resume()

    def _drop_held(self, outcome: str) -> None:
        """The prefilled KV kept for a decode leg will not be taken: count what becomes of it (``outcome``)."""
        abandon_kv(self.router, self._held, outcome)
        self._held = None

    def _abandon(self, why: str) -> None:
        if self._timer is not None:  # a retry's back-off: the KV it kept has no decode leg to come
            self._timer.cancel()
            self._timer = None
            self._drop_held("expiring")
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._stop_watching()
        sent, self._sent = self._sent, None
        if sent is not None:
            sent.abort()  # closes the socket: vLLM aborts the request
        if not self._answering and self._load is not None:
            self._end_leg(why)
        self.status = 499  # nginx's "client closed request", for the metrics only
        self.end(499)

    # -- answers the router gives itself ---------------------------------------------------------
    def _error(self, exc: HTTPError) -> None:
        self.end(exc.status)
        exc.answer(self.responder)

    def _retry_after(self) -> list[Header]:
        """When a client told the router is busy may try again."""
        return [(b"retry-after", str(self.router.config.limits.retry_after).encode())]

    def _pass_through(self, status: int, body: bytes, content_type: str) -> None:
        self.end(status)
        rid = self._request_id.encode("latin-1")
        self.responder.answer(status, body, content_type.encode("latin-1"), [(b"x-request-id", rid)])

    def _crashed(self, exc: BaseException) -> None:
        log.error("request failed", exc_info=exc)
        self.end(500)
        self.responder.answer(500, INTERNAL_ERROR, JSON, ())

    # -- bookkeeping -----------------------------------------------------------------------------
    def _first_token(self) -> None:
        """The answer's first bytes are in: time to first token, to the metrics and to the spans."""
        ttft = time.perf_counter() - self.started
        self.series.ttft.observe(ttft)
        load, leg = self._load, self._leg_span
        if load is not None:
            load.prefilled()  # the worker's prompt work is done
        if not (self.span is not None and self.span.recording) and not (leg is not None and leg.recording):
            return  # nothing records: no attributes to make
        ms = round(ttft * 1000, 3)
        if self.span is not None:
            self.span.set("grove.ttft_ms", ms)
        if leg is not None:
            leg.set("grove.ttft_ms", ms)
            if (
                self._prefilled_at is not None
            ):  # the KV transfer, plus the decode worker's queue and first step
                leg.set(HANDOFF_MS, round((time.monotonic() - self._prefilled_at) * 1000, 3))

    def _end_leg(self, failure: str | None) -> None:
        """A leg that will not answer the client: its worker's counts go back, its span ends (failed, unless None)."""
        load, span = self._load, self._leg_span
        self._load = self._leg_span = None
        if load is not None:
            load.release()
        if span is not None:
            if failure is not None:
                span.fail(failure)
            span.end()

    def end(self, status: int) -> None:
        """The one place where the request gives back what it holds and is counted (once)."""
        if self._answering:
            self._answering = False
            load, span, worker = self._load, self._leg_span, self._worker
            self._load = self._leg_span = None
            if not self.ok:
                sent, self._sent = self._sent, None
                if sent is not None:
                    sent.abort()  # closes the socket: vLLM aborts what it was still doing
            if load is not None:
                load.release()
            if self.ok and worker is not None:
                worker.record_success()
            if span is not None:
                if not self.ok:
                    span.fail("the answer broke off")
                span.end()
        if self.admitted:
            self.admitted = False
            self.router.admission.release()
        if not self._ended:
            self._ended = True
            series = self.series
            series.answered(status).inc()
            series.latency.observe(time.perf_counter() - self.started)
            span, self.span = self.span, None
            if span is not None:
                span.set("http.response.status_code", status)
                if status >= 500 or status == 499:
                    span.fail("client closed the request" if status == 499 else f"HTTP {status}")
                span.end()
