"""Bearer-key authentication shared by the router and the pipeline server.

Keys come from a command-line flag, an environment variable or a file (one key per line, ``#``
comments), so a Kubernetes Secret can feed them either as an env var or as a mounted file. It fails
closed: an empty key, a file without keys or an environment variable that is set but empty is a
configuration error (the process refuses to start) instead of "no auth", and an empty token never
matches. Tokens are compared in constant time (both sides hashed first, so neither the length nor the
matching key leaks).

Example::

    keys = ApiKeys.load(flag_values, env="GROVE_ROUTER_API_KEY", file=key_file)
    if keys.enabled and not keys.check_headers(scope["headers"]):
        ...  # answer 401
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from runtime.errors import GroveRuntimeError

__all__ = ["ApiKeys", "AuthConfigError", "bearer_token"]

_SEPARATORS = (",", " ", "\t", "\r", "\n")


class AuthConfigError(GroveRuntimeError):
    """The API keys cannot be used: an empty or malformed key, an unreadable or empty key file."""


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def _valid(key: str) -> bool:
    """A bearer token: visible ASCII, no comma (the separator of several keys in one variable)."""
    return bool(key) and all(0x21 <= ord(c) <= 0x7E and c != "," for c in key)


def _split(text: str) -> list[str]:
    for sep in _SEPARATORS[1:]:
        text = text.replace(sep, _SEPARATORS[0])
    return [part for part in text.split(_SEPARATORS[0]) if part]


def bearer_token(authorization: bytes | str | None) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` value; None for any other shape."""
    if authorization is None:
        return None
    raw = authorization.encode("latin-1", "replace") if isinstance(authorization, str) else authorization
    if raw[:7].lower() != b"bearer ":
        return None
    token = raw[7:].strip()
    return token or None


class ApiKeys:
    """The accepted bearer keys; :attr:`enabled` is False only when none was configured at all."""

    __slots__ = ("_digests",)

    def __init__(self, keys: Iterable[str] = ()) -> None:
        digests: list[bytes] = []
        for key in keys:
            if not _valid(key):
                raise AuthConfigError(
                    "an API key must be a non-empty token of visible ASCII characters without commas"
                )
            digests.append(_digest(key.encode("ascii")))
        self._digests = tuple(digests)

    @classmethod
    def load(
        cls,
        keys: Iterable[str] = (),
        *,
        env: str | None = None,
        file: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ApiKeys:
        """Keys from ``keys`` (flags), the variable ``env`` (comma- or space-separated) and ``file``.

        Raises:
            AuthConfigError: a key is empty or malformed, ``env`` is set but holds no key, or ``file``
                cannot be read or holds no key.
        """
        found = list(keys)
        variables = os.environ if environ is None else environ
        if env is not None and env in variables:
            from_env = _split(variables[env])
            if not from_env:
                raise AuthConfigError(f"${env} is set but holds no API key")
            found += from_env
        if file is not None:
            try:
                text = Path(file).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not ASCII text"
                raise AuthConfigError(f"cannot read API key file {file}: {reason}") from None
            lines = [line.split("#", 1)[0] for line in text.splitlines()]
            from_file = [key for line in lines for key in _split(line)]
            if not from_file:
                raise AuthConfigError(f"API key file {file} holds no key")
            found += from_file
        return cls(found)

    @property
    def enabled(self) -> bool:
        """Whether requests must carry a key."""
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def check(self, authorization: bytes | str | None) -> bool:
        """Whether an ``Authorization`` header value carries an accepted key (constant time per key)."""
        token = bearer_token(authorization)
        if token is None:
            return False
        digest = _digest(token)
        matched = False
        for accepted in self._digests:  # no early exit: the matching key's position does not leak
            matched |= hmac.compare_digest(digest, accepted)
        return matched

    def check_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """:meth:`check` on an ASGI header list (the first ``authorization`` header counts)."""
        for name, value in headers:
            if name.lower() == b"authorization":
                return self.check(value)
        return False
