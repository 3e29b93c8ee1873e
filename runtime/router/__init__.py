"""The prefill/decode router sidecar: an OpenAI-compatible proxy in front of vLLM workers.

Layout: ``config`` (the settings), ``workers`` (pool state), ``policies/`` (filter → score → pick,
one registry; the prefill/decode split decided in ``policies/prefill_split_decider``), ``router``
(the Router: its pools, policies and checks, and the routing decision with its explanation header),
``legs`` (the two legs of a request and the failure policy, over :mod:`runtime.http`'s keep-alive
pool), ``health``, ``admission``, ``metrics``, ``discovery/`` (static, Grove, Kubernetes),
``request`` (what a client may send), ``openapi`` (the document built from it), ``app`` (the
handler: the completions taken from the listener's callbacks, the other endpoints),
``routed_request`` (one completion from admission to its last byte, driven by callbacks),
``answer_error`` (the errors the router answers itself) and ``server`` (the runtime's listener with
the router's client limits, signals, drain). Bearer keys are :mod:`runtime.auth`, shared with the
pipeline server. Start one with ``grove-pipelines router`` or :class:`RouterServer`.
"""

from runtime.router.config import RouterConfig, load_config
from runtime.router.server import RouterServer, run

__all__ = ["RouterConfig", "RouterServer", "load_config", "run"]
