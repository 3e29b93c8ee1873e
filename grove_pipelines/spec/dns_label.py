"""Kubernetes' DNS label (apimachinery's ``IsDNS1123Label``): one definition for the stage and pipeline
names the SDK accepts (they become clique, Service and host names) and for the names Grove's webhook
checks offline (``grove_pipelines.grove.webhook.kube_syntax``)."""

from __future__ import annotations

import re

__all__ = ["DNS_LABEL", "is_dns_label"]

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""Lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters."""


def is_dns_label(name: object) -> bool:
    return isinstance(name, str) and bool(DNS_LABEL.match(name))
