"""The run's pod network: one network namespace per pod, veth pairs on a bridge the run creates.

Like a node's pod network: each pod has its own ``eth0`` and IP on a /24 the run picks from
``10.213.0.0/16`` (one not on any interface or route of this machine), the bridge holds the first
address (the node, where probes and Service addresses live). Pods get no default route and the run
never enables forwarding, so nothing they send leaves the machine. Each pod's hosts file lives in a
folder of the run's own (``<tmp>/gp<pid>-hosts``, nothing is written under ``/etc``) and is
bind-mounted over ``/etc/hosts`` in the mount namespace ``ip netns exec`` gives each command.

:meth:`Network.close` removes every namespace, link and file it made; it runs on Ctrl-C, at test end
and, for a run killed outright, :func:`sweep` removes what a dead run left (names carry its PID).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from grove_pipelines.errors import RunError

__all__ = ["Network", "PodNet", "hosts_folder", "sweep"]

_POOL = ipaddress.IPv4Network("10.213.0.0/16")
_PREFIX = "gp"  # every name: gp<pid>..., so a sweep finds a dead run's leftovers
_WITH_HOSTS = 'mount --bind "$0" /etc/hosts && exec "$@"'
"""``sh -c`` inside ``ip netns exec`` (a mount namespace of its own): the pod's hosts file, then the command."""


def hosts_folder(tag: str) -> Path:
    """Where the run tagged ``tag`` keeps its pods' hosts files."""
    return Path(tempfile.gettempdir()) / f"{tag}-hosts"


def _ip(*args: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RunError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result.stdout


@dataclass
class PodNet:
    """One pod's namespace, its IP and the host side of its veth pair."""

    netns: str
    ip: str
    host_link: str
    hosts: Path

    def exec_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace, with the pod's hosts file mounted over ``/etc/hosts``."""
        return ["ip", "netns", "exec", self.netns, "sh", "-c", _WITH_HOSTS, str(self.hosts), *argv]


@dataclass
class Network:
    """A bridge and a /24 for one run; :meth:`add_pod` makes namespaces on it."""

    tag: str = field(default_factory=lambda: f"{_PREFIX}{os.getpid()}")
    subnet: ipaddress.IPv4Network = field(init=False)
    pods: dict[str, PodNet] = field(default_factory=dict)
    extra_addresses: list[str] = field(default_factory=list)
    _next_host: int = 2
    _next_service: int = 250

    def __post_init__(self) -> None:
        if os.geteuid() != 0:
            raise RunError(
                "the local runtime makes network namespaces: run it as root (or with CAP_NET_ADMIN)"
            )
        if shutil.which("ip") is None:
            raise RunError("the local runtime needs iproute2's `ip` command")
        self.subnet = _free_subnet()
        self.bridge = f"{self.tag}br"[:15]
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    @property
    def gateway(self) -> str:
        """The node's address on the pod network (probes come from here)."""
        return str(self.subnet.network_address + 1)

    def add_pod(self, name: str) -> PodNet:
        """A namespace with ``lo`` and ``eth0`` up and the next free address."""
        if self._next_host >= self._next_service:
            raise RunError(f"more than {self._next_service - 2} pods: the run's /24 is full")
        number = self._next_host
        self._next_host += 1
        netns = f"{self.tag}-{number}"
        hosts = hosts_folder(self.tag) / netns
        net = PodNet(netns, str(self.subnet.network_address + number), f"{self.tag}v{number}"[:15], hosts)
        _ip("netns", "add", net.netns)
        self.pods[name] = net
        peer = f"{self.tag}p{number}"[:15]
        _ip("link", "add", net.host_link, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", net.netns)
        _ip("link", "set", net.host_link, "master", self.bridge)
        _ip("link", "set", net.host_link, "up")
        inside = ["netns", "exec", net.netns, "ip"]
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "link", "set", peer, "name", "eth0")
        _ip(*inside, "addr", "add", f"{net.ip}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        return net

    def add_service_address(self) -> str:
        """A new address on the bridge for a ClusterIP Service (counted down from .250)."""
        address = str(self.subnet.network_address + self._next_service)
        self._next_service -= 1
        _ip("addr", "add", f"{address}/32", "dev", self.bridge)
        self.extra_addresses.append(address)
        return address

    def write_hosts(self, name: str, text: str) -> None:
        """The hosts file of pod ``name`` (readable by all, as ``/etc/hosts`` is)."""
        hosts = self.pods[name].hosts
        hosts.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        hosts.write_text(text)
        hosts.chmod(0o644)

    def partition(self, name: str, *, cut: bool = True) -> None:
        """Cut pod ``name`` off the network (its veth down), or heal it."""
        _ip("link", "set", self.pods[name].host_link, "down" if cut else "up")

    def close(self) -> None:
        """Remove every namespace (killing what still runs in it), link, address and hosts file."""
        for net in self.pods.values():
            _kill_namespace(net.netns)
            _ip("link", "del", net.host_link, check=False)
        self.pods.clear()
        shutil.rmtree(hosts_folder(self.tag), ignore_errors=True)
        _ip("link", "del", self.bridge, check=False)


def _kill_namespace(netns: str) -> None:
    pids = _ip("netns", "pids", netns, check=False).split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass
    _ip("netns", "del", netns, check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    used = re.findall(r"inet (\d+\.\d+\.\d+\.\d+/\d+)", _ip("-4", "addr"))
    used += [line.split()[0] for line in _ip("-4", "route").splitlines() if "/" in line.split()[0]]
    taken = [ipaddress.ip_network(net, strict=False) for net in used]
    for candidate in _POOL.subnets(new_prefix=24):
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise RunError(f"no free /24 in {_POOL} for the pod network")


def sweep() -> list[str]:
    """Remove the namespaces, links and hosts files of runs whose process is gone; returns what went."""
    removed: list[str] = []
    alive = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    for line in _ip("netns", "list", check=False).splitlines():
        netns = line.split()[0] if line.split() else ""
        match = re.fullmatch(rf"{_PREFIX}(\d+)-\d+", netns)
        if match and int(match.group(1)) not in alive:
            _kill_namespace(netns)
            removed.append(netns)
    for line in _ip("-o", "link", "show", check=False).splitlines():
        link = line.split(": ")[1].split("@")[0] if ": " in line else ""
        match = re.fullmatch(rf"{_PREFIX}(\d+)(br|v\d+|p\d+)", link)
        if match and int(match.group(1)) not in alive:
            _ip("link", "del", link, check=False)
            removed.append(link)
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-hosts"):
        match = re.fullmatch(rf"{_PREFIX}(\d+)-hosts", folder.name)
        if match and int(match.group(1)) not in alive:
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():  # another user's is not ours to remove
                removed.append(str(folder))
    return removed
