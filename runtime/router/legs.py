"""The two legs of a disaggregated request and the failure policy; :mod:`runtime.router.routed_request` drives them.

Protocol (vLLM's NixlConnector, as vLLM's own proxy and llm-d's sidecar do it; DESIGN §4.5):

1. each leg and each retry has its own request id, derived from the client's (``<id>-p0``,
   ``<id>-d0``, ``<id>-d1``, ...), so vLLM never sees one id twice;
2. prefill leg: the cleaned body with ``kv_transfer_params = {"do_remote_decode": true, ...}``,
   ``stream: false``, ``max_tokens`` (and ``max_completion_tokens``) = 1, no ``stream_options``,
   no ``min_tokens``;
3. decode leg: the cleaned body plus the prefill answer's ``kv_transfer_params``, unchanged.

Failure policy: a prefill leg that fails (connection error, timeout, 5xx, no ``kv_transfer_params``)
is retried on another prefill worker, then the request is prefilled on the decode worker itself. A
decode or aggregated leg that fails before any byte reached the client is planned again without
that worker after a jittered back-off, at most ``retry.max_retries`` times. A worker's 4xx answer
is the client's problem and is passed through unchanged.

Prefilled KV that no decode leg took (vLLM 0.32's NixlConnector, read from its source): the
prefill worker pins the blocks for ``kv_lease_duration`` seconds (30 by default), renewed only by
heartbeats of a decode worker that has the request; a decode worker that rejects the request
before it reaches its engine (a 4xx) tells the prefill worker to free them at once
(``notify_kv_transfer_request_rejected``). So a 4xx releases the KV, any other failure leaves it
to expire with the lease, and a decode worker that could not even be reached leaves it intact:
the retry then pulls the same KV on another decode worker instead of prefilling again, while the
lease (``timeouts.kv_lease``, less a margin) lasts. ``grove_router_prefilled_kv_abandoned``
counts each outcome.

A decode leg pulls its KV from the prefill worker before answering; vLLM 0.32 has no deadline on
that pull, so when the prefill worker dies holding the KV, the decode leg would wait forever. The
router watches the KV's source until the decode answer's headers are in: once the source is seen
gone (a leg to it cut or refused, or a failed health check), the decode leg is closed (vLLM aborts
it) and the request is planned again, which prefills it anew.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import UpstreamError, UpstreamTimeout
from runtime.http.json_wire import decode_like_stdlib, encode_json
from runtime.router.policies import RequestView, work_tokens
from runtime.router.router import Route, Router
from runtime.router.workers import Worker
from runtime.tracing import Span, start_span
from runtime.tracing.context import SpanContext

__all__ = [
    "CACHED_TOKENS",
    "HANDOFF_MS",
    "PATHS",
    "LegIds",
    "Load",
    "PassThrough",
    "Prefilled",
    "abandon_kv",
    "backoff_delay",
    "decode_body",
    "failed_on",
    "leg_span",
    "may_retry",
    "note_cached_tokens",
    "prefill_body",
    "short_reason",
    "start_prefill",
]

PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}

_PREFILL_KV = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}
CACHED_TOKENS = "grove.cached_tokens"
"""A leg span's attribute: vLLM's ``usage.prompt_tokens_details.cached_tokens`` (with vLLM's
``--enable-prompt-tokens-details``), the prompt tokens its prefix cache already held."""
HANDOFF_MS = "grove.handoff_ms"
"""A decode leg span's attribute: milliseconds from the prefill answer to the decode leg's first token
(its first body bytes; a whole answer when not streamed). It bounds the KV transfer from above: it
also holds the decode worker's queueing and first step (vLLM 0.32 reports no transfer time per request)."""
_LEASE_MARGIN = 1 / 3  # of the KV lease: reuse prefilled KV only while two thirds of it remain


class PassThrough(Exception):
    """A worker answered with a 4xx: hand its answer to the client as it is."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type


def prefill_body(body: dict[str, Any]) -> dict[str, Any]:
    """The prefill leg's body: compute the prompt's KV and one token, keep the KV for the decode worker."""
    out = dict(body)
    out["kv_transfer_params"] = dict(_PREFILL_KV)
    out["stream"] = False
    out["max_tokens"] = 1
    if "max_completion_tokens" in out:
        out["max_completion_tokens"] = 1
    out.pop("stream_options", None)
    out.pop("min_tokens", None)
    return out


def decode_body(body: dict[str, Any], kv_transfer_params: dict[str, Any]) -> dict[str, Any]:
    """The decode leg's body: the original request plus the prefill answer's ``kv_transfer_params``."""
    return {**body, "kv_transfer_params": kv_transfer_params}


class LegIds:
    """Request ids of one client request's legs: ``<base>-p0``, ``<base>-d0``, ``<base>-p1``, ``<base>-w0``."""

    __slots__ = ("_base", "_counts")

    def __init__(self, base: str) -> None:
        self._base = base
        self._counts: dict[str, int] = {}

    def next(self, leg: str) -> str:
        """A fresh id for the next ``prefill``, ``decode`` or ``worker`` leg."""
        n = self._counts.get(leg, 0)
        self._counts[leg] = n + 1
        return f"{self._base}-{leg[0]}{n}"


class Load:
    """One leg's share of a worker's in-flight counts: taken on creation, given back once by :meth:`release`.

    ``prompt`` of the ``tokens`` is prefill work: :meth:`prefilled` gives it back as soon as the first
    token is in, so a worker counts only the decoding left (Dynamo's ``mark_prefill_completed``).
    """

    __slots__ = ("_prompt", "_router", "_tokens", "_worker")

    def __init__(self, router: Router, worker: Worker, tokens: int, prompt: int = 0) -> None:
        self._router, self._worker, self._tokens, self._prompt = router, worker, tokens, prompt
        worker.in_flight += 1
        worker.tokens_in_flight += tokens
        if router.board is not None:  # several router processes: the others see it too
            router.board.add(worker.role, worker.url, 1, tokens)

    def prefilled(self) -> None:
        """The first token is in: the prompt's share is computed; later calls do nothing."""
        prompt = self._prompt
        if not prompt or self._router is None:
            return
        self._prompt = 0
        self._tokens -= prompt
        self._worker.tokens_in_flight -= prompt
        if self._router.board is not None:
            self._router.board.add(self._worker.role, self._worker.url, 0, -prompt)

    def release(self) -> None:
        """Give the counts back; later calls do nothing (so every exit path may call it)."""
        if self._router is None:
            return
        self._worker.in_flight -= 1
        self._worker.tokens_in_flight -= self._tokens
        if self._router.board is not None:
            self._router.board.add(self._worker.role, self._worker.url, -1, -self._tokens)
        self._router = None  # type: ignore[assignment]


def leg_span(leg: str, worker: Worker, route: Route, leg_id: str, parent: SpanContext | None = None) -> Span:
    """The span of one leg (under the router's request span, ``parent`` or the current one): its worker and the route's decision."""
    span = start_span(f"router.leg {leg}", parent=parent, kind="client")
    if span.recording:  # by default nothing records: the attributes are not even built
        span.attributes.update(
            {
                "grove.leg": leg,
                "grove.worker": worker.url,
                "grove.route.mode": route.mode,
                "grove.route.policy": route.policy,
                "grove.route.reason": route.reason[:512],
                "grove.route.kind": route.kind,
                "grove.leg.request_id": leg_id,
            }
        )
    return span


@dataclass
class Prefilled:
    """KV a prefill worker holds for this request, until its lease ends."""

    worker: Worker
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    def fresh(self, lease: float) -> bool:
        return time.monotonic() - self.at < lease * (1 - _LEASE_MARGIN)


_CACHED = re.compile(rb'"cached_tokens"\s*:\s*(\d{1,9})')


def note_cached_tokens(span: Span, data: bytes) -> None:
    """Put the last ``"cached_tokens": N`` of an answer (or a stream's piece) on ``span``, if there is one.

    Only real JSON keys match: a model's text saying ``"cached_tokens"`` is escaped (``\\"``) in the answer.
    """
    if span.recording and b'"cached_tokens"' in data:
        found = _CACHED.findall(data)
        if found:
            span.set(CACHED_TOKENS, int(found[-1]))


def may_retry(router: Router, attempt: int, leg: str) -> bool:
    """Whether attempt number ``attempt`` is within ``retry.max_retries``; a retry that is, is counted."""
    if attempt > router.config.retry.max_retries:
        return False
    router.metrics.of(router.metrics.retries, leg).inc()
    return True


def abandon_kv(router: Router, held: Prefilled | None, outcome: str) -> None:
    """Count what became of prefilled KV no decode leg took (``reused``, ``released``, ``expiring``, ``lost``)."""
    if held is not None:
        router.metrics.of(router.metrics.kv_abandoned, outcome).inc()


def start_prefill(
    router: Router, req: RequestView, route: Route, headers: dict[str, str], path: str, ids: LegIds
) -> asyncio.Task[dict[str, Any] | None]:
    """Start the prefill leg as a task, its first worker's load taken now.

    A task runs only from the loop's next turn: a request planned in this turn must already see this
    leg in flight, or every request read together would pass the pool's ``max_prefill_in_flight``.
    """
    assert route.prefill is not None
    first = Load(router, route.prefill, work_tokens(req, route.prefill, decode=False))
    task = asyncio.get_running_loop().create_task(_run_prefill(router, req, route, headers, path, ids, first))
    # a task cancelled before it ran never reaches its finally: the load is given back here too
    task.add_done_callback(lambda _: first.release())
    return task


async def _run_prefill(
    router: Router,
    req: RequestView,
    route: Route,
    headers: dict[str, str],
    path: str,
    ids: LegIds,
    first: Load | None,
) -> dict[str, Any] | None:
    """Run the prefill leg, retrying on other prefill workers; on giving up, switch to local prefill.

    ``first`` is the load already taken on ``route.prefill``.
    """
    cfg = router.config
    body = encode_json(prefill_body(req.body))
    tried: set[str] = set()
    worker = route.prefill
    while worker is not None:
        tried.add(worker.url)
        leg_headers = {**headers, "X-Request-Id": ids.next("prefill")}
        load = first if first is not None else Load(router, worker, work_tokens(req, worker, decode=False))
        first = None
        started = time.perf_counter()
        span = leg_span("prefill", worker, route, leg_headers["X-Request-Id"])
        try:
            with span:
                reply = await router.upstream.post(
                    worker.url + path, body, leg_headers, total=cfg.timeouts.prefill
                )
                span.set("http.response.status_code", reply.status)
                data = await reply.read()
                span.set("grove.ttft_ms", round((time.perf_counter() - started) * 1000, 3))
                if 400 <= reply.status < 500:
                    raise PassThrough(reply.status, data, reply.content_type)
                if reply.status != 200:
                    raise UpstreamError(f"HTTP {reply.status}", url=worker.url, status=reply.status)
                kv = _kv_params(data, span)
                if kv is None:
                    raise UpstreamError(
                        "answer has no kv_transfer_params (is it a kv_producer?)", url=worker.url
                    )
            worker.record_success()
            router.metrics.of(router.metrics.leg_latency, "prefill").observe(time.perf_counter() - started)
            return kv
        except UpstreamError as exc:
            failed_on(router, worker, exc)
            failed = f"prefill {worker.url} failed ({short_reason(exc)})"
        finally:
            load.release()
        others = [w for w in router.pools["prefill"].available(req.model) if w.url not in tried]
        choice = router.choose("prefill", others, req) if others else None
        if choice is None or len(tried) > cfg.retry.prefill_retries:
            route.notes.append(f"fallback local-prefill after {failed}")
            route.mode, route.prefill, route.kind = "local-prefill", None, "prefill-failed"
            router.metrics.of(router.metrics.decisions, route.mode, route.kind).inc()
            return None
        route.notes.append(f"retry after {failed}")
        router.metrics.of(router.metrics.retries, "prefill").inc()
        worker = route.prefill = choice.worker
        await _backoff(cfg.retry.backoff_base, cfg.retry.backoff_max, len(tried))
    return None


def _kv_params(data: bytes, span: Span) -> dict[str, Any] | None:
    """The prefill answer's ``kv_transfer_params``; its prompt tokens vLLM found cached go on ``span``."""
    try:  # the worker's own JSON may hold what strict JSON refuses (vLLM writes -Infinity logprobs)
        parsed = decode_like_stdlib(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    usage = parsed.get("usage")
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if isinstance(cached, int) and not isinstance(cached, bool):
        span.set(CACHED_TOKENS, cached)
    kv = parsed.get("kv_transfer_params")
    return kv if isinstance(kv, dict) else None


def failed_on(router: Router, worker: Worker, exc: UpstreamError) -> None:
    """A leg to ``worker`` failed: mark it lost when its process looks gone, count the failure (it may be ejected)."""
    if exc.status is None and not isinstance(exc, UpstreamTimeout):
        worker.mark_lost()  # refused or cut: the process is likely gone, and any KV it held
    h = router.config.health
    if worker.record_failure(eject_after=h.eject_after, base=h.eject_base, cap=h.eject_max):
        router.metrics.of(router.metrics.ejections, worker.role, worker.url).inc()


def short_reason(exc: UpstreamError) -> str:
    """The failure's text without its URL, short enough for the route header's notes."""
    text = str(exc)
    if exc.url and text.startswith(exc.url + ": "):
        text = text[len(exc.url) + 2 :]
    return text[:120]


def backoff_delay(base: float, cap: float, attempt: int) -> float:
    """Full jitter: a random wait in [0, min(cap, base * 2**(attempt-1))] seconds (none when ``base`` is 0)."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1))) if base > 0 else 0.0


async def _backoff(base: float, cap: float, attempt: int) -> None:
    """Wait out :func:`backoff_delay` before a retry."""
    delay = backoff_delay(base, cap, attempt)
    if delay:
        await asyncio.sleep(delay)
