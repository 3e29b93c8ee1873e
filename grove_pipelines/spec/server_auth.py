"""The pipeline server's credentials: one contract shared by the compiler (what pods get) and the runtime.

A compiled pipeline references one Secret, ``<pcs>-auth``, that ``deploy`` creates with random values
when it is missing (a user may create it first with their own keys)::

    api-keys      bearer keys the entry accepts (comma- or space-separated); env GP_API_KEYS
    stage-token   the token the pipeline's own pods send on stage calls;    env GP_STAGE_TOKEN

A server without a variable runs without that check (``grove-pipelines run`` on loopback); a variable
that is set but empty refuses to start (fail closed).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "API_KEYS_ENV",
    "API_KEYS_SECRET_KEY",
    "STAGE_TOKEN_ENV",
    "STAGE_TOKEN_SECRET_KEY",
    "auth_secret_name",
    "new_secret_value",
    "secret_key_refs",
]

API_KEYS_ENV = "GP_API_KEYS"
STAGE_TOKEN_ENV = "GP_STAGE_TOKEN"
API_KEYS_SECRET_KEY = "api-keys"
STAGE_TOKEN_SECRET_KEY = "stage-token"


def auth_secret_name(pcs: str) -> str:
    """The Secret holding a pipeline's API keys and stage token."""
    return f"{pcs}-auth"


def new_secret_value() -> str:
    """A fresh random key or token (256 bits, URL-safe): what deploy and the local run generate."""
    return secrets.token_urlsafe(32)


def secret_key_refs(pcs: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(secret, key)`` of every ``secretKeyRef`` in a PodCliqueSet document's containers."""
    for clique in pcs["spec"]["template"]["cliques"]:
        pod = clique["spec"]["podSpec"]
        for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    yield str(ref["name"]), str(ref["key"])
