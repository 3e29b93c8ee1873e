"""The pipeline server's limits and credentials, from the environment (the compiled pods set them).

Defaults (each overridable by its variable)::

    GP_MAX_BODY_BYTES   8 MiB   largest request body; more is refused with 413 while reading
    GP_TIMEOUT_S        300     a whole pipeline request (a client's X-Request-Deadline may shorten it)
    GP_STAGE_TIMEOUT_S  120     one Python stage call, when the stage sets no timeout_s
    GP_LLM_TIMEOUT_S    300     one LLM call, when the llm() sets no timeout_s
    GP_DRAIN_S          25      after SIGTERM: finish requests in flight for up to this long
                                             (inside Kubernetes' default 30 s grace period)

Every stage and LLM call is also bounded by what is left of the request's deadline.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grove_pipelines.spec.server_auth import API_KEYS_ENV, STAGE_TOKEN_ENV
from grove_pipelines.spec.shutdown import SERVER_DRAIN_S
from runtime.auth import ApiKeys
from runtime.server.errors import ServerConfigError

__all__ = ["ServerSettings"]

_ENV = {
    "max_body_bytes": "GP_MAX_BODY_BYTES",
    "timeout_s": "GP_TIMEOUT_S",
    "stage_timeout_s": "GP_STAGE_TIMEOUT_S",
    "llm_timeout_s": "GP_LLM_TIMEOUT_S",
    "drain_s": "GP_DRAIN_S",
}


class ServerSettings(BaseModel):
    """Limits of one server process; ``api_keys`` guard the entry, ``stage_token`` the stage endpoints."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    max_body_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    timeout_s: Annotated[float, Field(gt=0)] = 300.0
    stage_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    llm_timeout_s: Annotated[float, Field(gt=0)] = 300.0
    drain_s: Annotated[float, Field(ge=0)] = float(SERVER_DRAIN_S)
    api_keys: ApiKeys = Field(default_factory=ApiKeys)
    stage_token: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Settings from ``GP_*`` variables.

        Raises:
            AuthConfigError: a key variable is set but empty or malformed (fail closed).
            ServerConfigError: a limit is not a number in its range.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            field: env[name] for field, name in _ENV.items() if env.get(name, "").strip()
        }
        values["api_keys"] = ApiKeys.load(env=API_KEYS_ENV, environ=env)
        if STAGE_TOKEN_ENV in env:
            token = env[STAGE_TOKEN_ENV].strip()
            ApiKeys([token])  # the same rules as a key: fail closed on an empty or malformed token
            values["stage_token"] = token
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            field = str(exc.errors()[0]["loc"][0])
            raise ServerConfigError(f"${_ENV.get(field, field)}: {exc.errors()[0]['msg']}") from None

    @property
    def stage_keys(self) -> ApiKeys:
        """The stage token as the key set the stage endpoints accept (empty: no check)."""
        return ApiKeys([self.stage_token] if self.stage_token else [])
