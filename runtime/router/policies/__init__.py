"""Routing policies: small filter, scorer and picker classes composed by name through one registry.

``make_policy("prefix", {"block_chars": 128})`` builds a ready :class:`~runtime.router.policies.policy.Policy`;
an unknown name or a bad parameter is a :class:`~runtime.errors.RouterConfigError` at startup.

Layout: ``policy`` (the engine), ``parts`` (the Filter, Scorer and Picker protocols), ``request_view``
(what parts read of a request), ``request_work`` (the work a request brings to a worker, which its
load counts), ``filters/``, ``scorers/``, ``pickers/``, ``cache/`` (what the parts know of workers'
caches), ``prefill_split_decider`` (whether prefill runs on a prefill worker) and ``registry`` (the
names users type).
"""

from runtime.router.policies.policy import Choice, Policy
from runtime.router.policies.registry import POLICIES, make_policy
from runtime.router.policies.request_view import RequestView
from runtime.router.policies.request_work import note_uncached, prompt_work, work_tokens

__all__ = [
    "POLICIES",
    "Choice",
    "Policy",
    "RequestView",
    "make_policy",
    "note_uncached",
    "prompt_work",
    "work_tokens",
]
