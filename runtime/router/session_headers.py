"""Which request headers name a session, shared by the router (affinity) and the pipeline server (runs).

Agents name their conversations in headers of their own: ``x-session-id`` (the common one, and the
header vLLM itself reads), ``x-claude-code-session-id`` (Claude Code), ``session-id`` (other coding
agents). The first present in :data:`SESSION_HEADERS` order wins. A value is a key for routing and
nothing more, so it is bounded and must be printable ASCII; anything else is ignored (the request
then has no session).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "MAX_SESSION_CHARS",
    "SESSION_HEADER",
    "SESSION_HEADERS",
    "clean_session",
    "session_from",
    "session_of",
]

SESSION_HEADER = "x-session-id"
"""The header the router reads first and the pipeline server sets on every LLM call of a run."""

SESSION_HEADERS = (SESSION_HEADER, "x-claude-code-session-id", "session-id")
"""Session headers, most specific first (lower case, as HTTP servers hand them over)."""

MAX_SESSION_CHARS = 256


def clean_session(value: str | bytes | None) -> str | None:
    """The value as a session key, or None when it is empty, too long or not printable ASCII."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip()
    # printable ASCII (space to tilde): isascii + isprintable says it without a loop over the characters
    if not value or len(value) > MAX_SESSION_CHARS or not (value.isascii() and value.isprintable()):
        return None
    return value


def session_from(headers: Mapping[str, str] | Iterable[tuple[bytes, bytes]]) -> str | None:
    """The session a request names in its headers (a mapping, or ASGI's raw ``(name, value)`` pairs)."""
    found: dict[str, str] = {}
    if isinstance(headers, (dict, Mapping)):  # dict first: a dict skips the ABC's slower check
        for name, value in headers.items():
            key = name.lower()
            if key in SESSION_HEADERS:
                found[key] = value
    else:
        for raw, value in headers:
            key = raw.decode("latin-1").lower()
            if key in SESSION_HEADERS and key not in found:
                found[key] = value.decode("latin-1")
    return session_of(found)


def session_of(headers: Mapping[str, str]) -> str | None:
    """:func:`session_from` for headers whose names are lower-case already, as ``runtime.http`` hands them over."""
    for header in SESSION_HEADERS:
        value = headers.get(header)
        if value is not None:  # most requests name no session: no call per header
            session = clean_session(value)
            if session is not None:
                return session
    return None
