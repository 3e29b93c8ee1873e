"""Kubernetes' syntax rules for names, labels, annotations and environment variables (apimachinery's
``IsDNS1123Label``, ``IsDNS1123Subdomain``, ``ValidateLabels``, ``ValidateAnnotations``, and the core
API's ``IsEnvVarName``), as Grove's webhook applies them."""

from __future__ import annotations

import re
from typing import Any

from grove_pipelines.grove.webhook.fields import as_dict
from grove_pipelines.grove.webhook.problems import Problems
from grove_pipelines.spec.dns_label import is_dns_label

__all__ = ["check_labels", "is_dns_label", "is_dns_subdomain", "is_env_name"]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_ANNOTATIONS_BYTES = 256 * 1024


def is_env_name(name: Any) -> bool:
    return isinstance(name, str) and bool(_ENV_NAME.match(name))


def is_dns_subdomain(name: Any) -> bool:
    return isinstance(name, str) and 0 < len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))


def _qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or not is_dns_subdomain(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED.match(name))


def check_labels(meta: dict[str, Any], path: str, out: Problems) -> None:
    """Kubernetes' label and annotation syntax (``ValidateLabels``/``ValidateAnnotations``)."""
    for key, value in as_dict(meta.get("labels")).items():
        if not _qualified_name(str(key)):
            out.add("label", f"{path}.labels[{key}]", f"{key!r} is not a valid label key")
        if not isinstance(value, str) or len(value) > 63 or (value and not _QUALIFIED.match(value)):
            out.add("label", f"{path}.labels[{key}]", f"{value!r} is not a valid label value")
    annotations = as_dict(meta.get("annotations"))
    for key in annotations:
        if not _qualified_name(str(key).lower()):
            out.add("annotation", f"{path}.annotations[{key}]", f"{key!r} is not a valid annotation key")
    size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if size > _ANNOTATIONS_BYTES:
        out.add("annotation", f"{path}.annotations", f"annotations are {size} bytes, over 256 KiB")
