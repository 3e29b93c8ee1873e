"""The work a request brings to the worker it is sent to: the prompt tokens that worker must compute, plus its output budget.

A worker's ``tokens_in_flight`` is the sum of this over the legs in flight on it (``legs.Load`` takes
it when a leg starts, gives the prompt's share back when the leg's first token is in, as Dynamo's KV
router does, and the rest when the leg ends), and it is the load term of the ``prefix`` policy's
cost and of its cost bound. Counting whole prompts would make a worker that serves cache
hits look as busy as one computing cold prompts, and fan-out siblings over one cached context would
count each other's shared part as load; so a policy that knows what the chosen worker holds notes,
when the request is routed there, how many prompt tokens that worker still lacks (Dynamo's KV
router counts a worker's load the same way: prefill tokens after overlap plus active decode). A
policy that knows nothing of caches notes nothing, and the whole prompt counts.
"""

from __future__ import annotations

from runtime.router.policies.request_view import RequestView
from runtime.router.workers import Worker

__all__ = ["note_uncached", "prompt_work", "work_tokens"]

_UNCACHED = "uncached_tokens"  # RequestView.memo key: {worker URL: prompt tokens it lacks}


def note_uncached(req: RequestView, worker: Worker, tokens: int) -> None:
    """Record that ``worker`` must compute ``tokens`` of ``req``'s prompt (the rest it holds)."""
    req.memo.setdefault(_UNCACHED, {})[worker.url] = max(0, int(tokens))


def prompt_work(req: RequestView, worker: Worker) -> int:
    """The prompt tokens ``worker`` must compute for ``req``: as noted by the policy, else the whole prompt."""
    noted: dict[str, int] = req.memo.get(_UNCACHED, {})
    prompt = noted.get(worker.url)
    return req.est_prompt_tokens() if prompt is None else prompt


def work_tokens(req: RequestView, worker: Worker, *, decode: bool = True) -> int:
    """Tokens of work ``req`` brings to ``worker``: its uncached prompt tokens, plus ``max_tokens`` when it decodes there."""
    return prompt_work(req, worker) + (req.max_tokens if decode else 0)
