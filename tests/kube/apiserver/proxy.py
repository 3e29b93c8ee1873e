"""The pod proxy of the double: ``/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH``, as kube-apiserver
serves it (authenticated, RBAC ``get`` on ``pods/proxy``, forwarded to the pod's IP and port).

The double's pods have IPs (``status.podIP``) that no socket listens on; a test gives a pod a real
server by ``attach(pod_ip, port, "127.0.0.1:N")``, and the proxy forwards there. A pod port nothing is
attached to answers as a real cluster does for a closed port: 503 ``error trying to reach service``.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.kube.apiserver.api import Api, ApiStatus

__all__ = ["PodProxy", "ProxyAnswer"]

_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/:]+)(?::(\d+))?/proxy(/.*)?$")
POD = "/v1/pods"
LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True)
class ProxyAnswer:
    status: int
    content_type: str
    body: bytes


@dataclass
class PodProxy:
    api: Api
    network: dict[tuple[str, int], str] = field(default_factory=dict)  # (pod IP, port) -> 127.0.0.1:N

    @staticmethod
    def matches(path: str) -> bool:
        return _PATH.match(path) is not None

    def attach(self, pod_ip: str, port: int, address: str) -> None:
        """What listens on ``pod_ip:port`` is the server at ``address`` (``127.0.0.1:N``)."""
        assert address.startswith("127."), "the double forwards to loopback servers only"
        self.network[(pod_ip, port)] = address

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> ProxyAnswer:
        self.api.calls.append((method, path, query))
        user = self.api._authenticate(headers)
        found = _PATH.match(path)
        assert found is not None
        namespace, name, port, rest = found.group(1), found.group(2), found.group(3), found.group(4) or "/"
        pods = next(k for k in self.api.kinds() if (k.group, k.plural) == ("", "pods"))
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        self.api._authorize(user, verb, pods, namespace, name, "proxy")
        pod = self.api.store.get((POD, namespace, name))
        if pod is None:
            raise ApiStatus(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            raise ApiStatus(503, "ServiceUnavailable", f"pod {name} does not have a host assigned")
        number = int(port) if port else _first_port(pod)
        target = self.network.get((ip, number))
        refused = f"error trying to reach service: dial tcp {ip}:{number}: connect: connection refused"
        if target is None:
            raise ApiStatus(503, "ServiceUnavailable", refused)
        url = f"http://{target}{rest}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, data=body or None, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return ProxyAnswer(answer.status, answer.headers.get("Content-Type", ""), answer.read(LIMIT))
        except urllib.error.HTTPError as exc:
            return ProxyAnswer(exc.code, exc.headers.get("Content-Type", ""), exc.read(LIMIT))
        except OSError as exc:
            raise ApiStatus(503, "ServiceUnavailable", refused) from exc


def _first_port(pod: dict[str, Any]) -> int:
    for container in pod["spec"].get("containers") or []:
        for port in container.get("ports") or []:
            return int(port["containerPort"])
    return 80
