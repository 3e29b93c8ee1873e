"""The cluster's refusals and failures, as grove-pipelines errors: the one place that knows the client's.

Why our own classes: the ``kubernetes`` package is an implementation detail of ``grove_pipelines.kube``.
Its exceptions print multi-line reprs with headers and whole bodies; they must never reach a user, so
every call to the API goes through :func:`translate`, which turns them into one of these (``from`` the
original, so ``--debug`` still shows it)::

    KubeError                         (grove_pipelines.errors)
    ├── KubeConfigError               no kubeconfig, an unknown context, an unreadable file
    ├── KubeUnreachableError          the API server did not answer (refused, DNS, TLS, timeout)
    ├── KubeAPIError                  the API server answered with an error status
    │   ├── KubeBadRequestError       400
    │   ├── KubeUnauthorizedError     401  credentials missing or expired
    │   ├── KubeForbiddenError        403  RBAC says no
    │   ├── KubeNotFoundError         404
    │   ├── KubeConflictError         409  server-side apply conflicts (``conflicts``) or a version race
    │   ├── KubeInvalidError          422  the object is invalid (``causes``)
    │   ├── KubeTooManyRequestsError  429  (``retry_after``)
    │   └── KubeServerError           5xx
    ├── GroveNotInstalledError        the Grove CRDs are not served by this cluster
    ├── NamespaceNotFoundError        the target namespace does not exist
    ├── FrozenCompositionError        the change needs a delete and create (``changes``)
    ├── DeployCancelledError          the user said no to a confirmation prompt
    ├── PipelineNotFoundError         no PodCliqueSet of that name (status, delete)
    ├── UnmanagedPipelineError        a PodCliqueSet of that name that grove-pipelines did not deploy
    └── WaitTimeoutError              --wait ran out of time (``not_ready``)
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from grove_pipelines.errors import KubeError

__all__ = [
    "TEXT_ERROR_MAX_SIZE",
    "DeployCancelledError",
    "FrozenCompositionError",
    "GroveNotInstalledError",
    "KubeAPIError",
    "KubeBadRequestError",
    "KubeConfigError",
    "KubeConflictError",
    "KubeForbiddenError",
    "KubeInvalidError",
    "KubeNotFoundError",
    "KubeServerError",
    "KubeTooManyRequestsError",
    "KubeUnauthorizedError",
    "KubeUnreachableError",
    "NamespaceNotFoundError",
    "PipelineNotFoundError",
    "UnmanagedPipelineError",
    "WaitTimeoutError",
    "one_line",
    "translate",
]

TEXT_ERROR_MAX_SIZE = 256
"""Bodies that are not a Kubernetes Status are cut to this many characters (they can be huge or secret)."""


def one_line(text: str) -> str:
    """Collapse line breaks (and the blanks around them) so an error is one line on a terminal."""
    return re.sub(r"\s*\n\s*", "; ", text.strip())


class KubeConfigError(KubeError):
    """No usable kubeconfig: the file is missing or broken, or the context is unknown."""


class KubeUnreachableError(KubeError):
    """The API server could not be reached; ``host`` is where we tried."""

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message)
        self.host = host


class KubeAPIError(KubeError):
    """The API server answered with an error; ``status``, ``reason`` and the Status ``message``/``details``."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: str = "",
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.details = details or {}
        self.retry_after = retry_after


class KubeBadRequestError(KubeAPIError):
    """400: the request itself is malformed (a bug of ours or a server too old for it)."""


class KubeUnauthorizedError(KubeAPIError):
    """401: the credentials in the kubeconfig are missing, wrong or expired."""


class KubeForbiddenError(KubeAPIError):
    """403: authenticated, but RBAC does not allow this verb on this resource."""


class KubeNotFoundError(KubeAPIError):
    """404: the object, its namespace or its API is not there."""


class KubeConflictError(KubeAPIError):
    """409: server-side apply conflicts with other field managers; ``conflicts`` lists the fields."""

    @property
    def conflicts(self) -> list[str]:
        """``'conflict with "kubectl" using grove.io/v1alpha1: .spec.replicas'`` per conflicting field."""
        causes = self.details.get("causes") or []
        return [f"{c.get('message', '')}: {c.get('field', '')}" for c in causes if c.get("field")]


class KubeInvalidError(KubeAPIError):
    """422: the object was rejected by validation; ``causes`` says which fields and why."""

    @property
    def causes(self) -> list[str]:
        """``'spec.replicas: Invalid value: ...'`` per invalid field."""
        return [f"{c.get('field', '')}: {c.get('message', '')}" for c in self.details.get("causes") or []]


class KubeTooManyRequestsError(KubeAPIError):
    """429: the API server asks us to slow down (``retry_after`` seconds)."""


class KubeServerError(KubeAPIError):
    """5xx: the API server (or a webhook it calls) failed."""


class GroveNotInstalledError(KubeError):
    """The cluster does not serve grove.io/v1alpha1 PodCliqueSets: Grove is not installed."""


class NamespaceNotFoundError(KubeError):
    """The namespace to deploy into does not exist (and --create-namespace was not given)."""

    def __init__(self, namespace: str) -> None:
        super().__init__(
            f"namespace {namespace!r} does not exist; create it (kubectl create namespace {namespace}) "
            "or pass --create-namespace"
        )
        self.namespace = namespace


class FrozenCompositionError(KubeError):
    """The live PodCliqueSet differs in what Grove freezes after creation; ``changes`` lists each."""

    def __init__(self, name: str, namespace: str, changes: Sequence[str]) -> None:
        self.name = name
        self.namespace = namespace
        self.changes = list(changes)
        super().__init__(
            f"PodCliqueSet {namespace}/{name} already runs with another composition, which Grove does not "
            f"allow to change after creation ({'; '.join(self.changes)}); rerun with --recreate to delete "
            "and create it (its pods restart), or deploy under a new pipeline name"
        )


class UnmanagedPipelineError(KubeError):
    """A PodCliqueSet of that name exists but was not deployed by grove-pipelines: never deleted by us."""

    def __init__(self, name: str, namespace: str, action: str) -> None:
        super().__init__(
            f"PodCliqueSet {namespace}/{name} is not managed by grove-pipelines (no label "
            f"app.kubernetes.io/managed-by=grove-pipelines): refusing to {action} it; pick another pipeline name "
            "or namespace, or remove it yourself (kubectl delete podcliqueset)"
        )
        self.name = name
        self.namespace = namespace


class DeployCancelledError(KubeError):
    """The user declined a confirmation prompt; nothing was changed."""


class WaitTimeoutError(KubeError):
    """``--wait`` timed out; ``not_ready`` has one line per clique that is not ready, with the reasons."""

    def __init__(self, message: str, *, not_ready: Sequence[str]) -> None:
        super().__init__(message)
        self.not_ready = list(not_ready)


_BY_STATUS: dict[int, type[KubeAPIError]] = {
    400: KubeBadRequestError,
    401: KubeUnauthorizedError,
    403: KubeForbiddenError,
    404: KubeNotFoundError,
    409: KubeConflictError,
    422: KubeInvalidError,
    429: KubeTooManyRequestsError,
}


def _status_body(body: object) -> dict[str, Any] | None:
    """The parsed body when it is a Kubernetes ``Status``, else None."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) and parsed.get("kind") == "Status" else None


def _retry_after(headers: Any, status: dict[str, Any] | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if value is None and status:
        value = (status.get("details") or {}).get("retryAfterSeconds")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _from_api_exception(exc: ApiException, action: str, host: str) -> KubeError:
    if not exc.status:  # status 0: the client failed before any answer (TLS, bad request parameters)
        return KubeUnreachableError(
            f"cannot {action}: {one_line(str(exc.reason))[:TEXT_ERROR_MAX_SIZE]}", host=host
        )
    status = _status_body(exc.body)
    code = int(exc.status)
    if status is not None:
        text = str(status.get("message") or status.get("reason") or exc.reason)
    else:
        text = str(exc.body or exc.reason or "")[:TEXT_ERROR_MAX_SIZE]
    reason = str(exc.reason or (status or {}).get("reason") or "")
    cls = _BY_STATUS.get(code, KubeServerError if code >= 500 else KubeAPIError)
    details = (status or {}).get("details") or {}
    message = f"cannot {action}: {one_line(text)} (HTTP {code}{' ' + reason if reason else ''})"
    if cls is KubeConflictError and details.get("causes"):
        message += "; rerun with --force-conflicts to take those fields over"
    return cls(
        message, status=code, reason=reason, details=details, retry_after=_retry_after(exc.headers, status)
    )


def _connection_reason(exc: BaseException) -> str:
    """``Connection refused`` out of urllib3's nested ``MaxRetryError(NewConnectionError(...))``."""
    inner: BaseException = getattr(exc, "reason", None) or exc
    text = str(inner)
    match = re.search(r"\[Errno -?\d+\]\s*([^'\"\)]+)", text)
    if match:
        return match.group(1).strip()
    return one_line(f"{type(inner).__name__}: {text}")[:TEXT_ERROR_MAX_SIZE]


@contextlib.contextmanager
def translate(action: str, *, host: str = "", where: str = "") -> Iterator[None]:
    """Run one API call; turn the client's exceptions into ours.

    ``action`` completes "cannot ...", e.g. ``"apply PodCliqueSet demo/rag"``; ``where`` names the
    kubeconfig and context for connection failures, so the user knows which cluster was meant.
    """
    try:
        yield
    except ApiException as exc:
        raise _from_api_exception(exc, action, host) from exc
    except Urllib3HTTPError as exc:
        suffix = f" ({where})" if where else ""
        raise KubeUnreachableError(
            f"cannot reach the Kubernetes API server at {host}{suffix}: {_connection_reason(exc)}", host=host
        ) from exc
    except ConfigException as exc:
        raise KubeConfigError(f"{action}: {one_line(str(exc))[:TEXT_ERROR_MAX_SIZE]}") from exc


class PipelineNotFoundError(KubeError):
    """There is no PodCliqueSet of that name in that namespace (status, delete)."""

    def __init__(self, name: str, namespace: str) -> None:
        super().__init__(f"no PodCliqueSet {name!r} in namespace {namespace!r} (deployed with another -n?)")
        self.name = name
        self.namespace = namespace
