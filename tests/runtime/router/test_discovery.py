"""Worker discovery: Grove naming, Kubernetes list+watch (against a pods API double), DNS probing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
import pytest_asyncio

from runtime.errors import DiscoveryError, RouterConfigError
from runtime.router.config import DiscoveryConfig, load_config
from runtime.router.discovery import Discovery
from runtime.router.discovery.dns import DnsProber
from runtime.router.discovery.grove import CliqueTarget, GroveEnv
from runtime.router.server import RouterServer
from tests.runtime.conftest import MakeFake
from tests.runtime.kube_pods_fake import FakePodsAPI
from tests.runtime.router.test_legs import COMPLETION

GROVE = {
    "GROVE_PCS_NAME": "rag",
    "GROVE_PCS_INDEX": "0",
    "GROVE_HEADLESS_SERVICE": "rag-0.team.svc.cluster.local",
}
ENV = GroveEnv.from_env(GROVE)


def grove_labels(clique_fqn: str, group: str | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/part-of": "rag",
        "grove.io/podcliqueset-replica-index": "0",
        "grove.io/podclique": clique_fqn,
    }
    if group:
        labels["grove.io/podcliquescalinggroup"] = group
    return labels


@pytest_asyncio.fixture(loop_scope="session")
async def kube_api() -> AsyncIterator[Callable[..., FakePodsAPI]]:
    apis: list[FakePodsAPI] = []

    def make(**kw: bool) -> FakePodsAPI:
        api = FakePodsAPI(**kw)
        apis.append(api)
        return api

    yield make
    for api in apis:
        await api.stop()


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for state that another thread or task produces."""
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_grove_names_follow_the_discovery_contract() -> None:
    standalone = CliqueTarget("prefill", "llm-prefill")
    assert standalone.selector(ENV) == (
        "app.kubernetes.io/part-of=rag,grove.io/podcliqueset-replica-index=0,"
        "grove.io/podclique=rag-0-llm-prefill"
    )
    assert standalone.dns_name(ENV, 2) == "rag-0-llm-prefill-2.rag-0.team.svc.cluster.local"
    leader = CliqueTarget("decode", "dleader", group="llm-decode")
    assert leader.selector(ENV).endswith("grove.io/podcliquescalinggroup=rag-0-llm-decode")
    assert leader.dns_name(ENV, 1) == "rag-0-llm-decode-1-dleader-0.rag-0.team.svc.cluster.local"
    assert leader.matches(ENV, grove_labels("rag-0-llm-decode-3-dleader"))
    assert not leader.matches(ENV, grove_labels("rag-0-llm-decode-3-dworker"))
    assert ENV.namespace == "team"


def test_grove_discovery_outside_a_grove_pod_names_the_missing_variables() -> None:
    with pytest.raises(DiscoveryError, match="missing: GROVE_PCS_INDEX, GROVE_HEADLESS_SERVICE"):
        GroveEnv.from_env({"GROVE_PCS_NAME": "rag"})


@pytest.mark.asyncio(loop_scope="session")
async def test_dns_probing_tolerates_one_gap_and_reports_changes() -> None:
    names: set[str] = {"p-0", "p-1", "p-2", "p-3"}
    seen: list[list[str]] = []

    async def resolves(host: str, port: int) -> bool:
        return host in names

    def urls(*ks: int) -> list[str]:
        return [f"http://p-{k}:8000" for k in ks]

    prober = DnsProber(name_for=lambda k: f"p-{k}", port=8000, on_change=seen.append, resolver=resolves)
    assert await prober.probe() == urls(0, 1, 2, 3)
    await prober.probe()  # no change, no report
    names.discard("p-1")  # pod 1 is being replaced: one gap is tolerated
    assert await prober.probe() == urls(0, 2, 3)
    names.discard("p-2")  # two names in a row are gone: probing stops there
    assert await prober.probe() == urls(0)
    assert seen == [urls(0, 1, 2, 3), urls(0, 2, 3), urls(0)]


async def test_a_dns_hiccup_keeps_the_last_good_set_until_an_authoritative_answer() -> None:
    names: set[str] = {"p-0", "p-1"}
    answering = True
    seen: list[list[str]] = []

    async def resolves(host: str, port: int) -> bool | None:
        return (host in names) if answering else None  # None: timeout / SERVFAIL, no answer

    prober = DnsProber(name_for=lambda k: f"p-{k}", port=8000, on_change=seen.append, resolver=resolves)
    good = ["http://p-0:8000", "http://p-1:8000"]
    assert await prober.probe() == good
    answering = False
    assert await prober.probe() == good  # no pod is dropped on a resolver failure
    answering, names = True, {"p-0"}
    assert await prober.probe() == ["http://p-0:8000"]  # an authoritative "no such name" counts
    assert seen == [good, ["http://p-0:8000"]]


@pytest.mark.asyncio(loop_scope="session")
async def test_grove_discovery_watches_the_cliques_ready_pods_through_the_api(
    kube_api: Callable[..., FakePodsAPI],
) -> None:
    api = kube_api()
    await api.start()
    await api.put(
        "rag-0-llm-prefill-abcde", labels=grove_labels("rag-0-llm-prefill"), ip="127.0.0.11", namespace="team"
    )
    await api.put(
        "rag-0-llm-decode-fghij",
        labels=grove_labels("rag-0-llm-decode"),
        ip="127.0.0.12",
        namespace="team",
        ready=False,
    )
    await api.put(
        "rag-0-retriever-xxxxx", labels=grove_labels("rag-0-retriever"), ip="127.0.0.13", namespace="team"
    )
    members: dict[str, list[str]] = {}
    config = DiscoveryConfig(
        mode="grove",
        prefill_clique="llm-prefill",
        decode_clique="llm-decode",
        api_server=api.url,
        watch_timeout=5,
    )
    discovery = Discovery(config, lambda role, urls: members.__setitem__(role, urls), env=GROVE)
    await discovery.start()
    try:
        assert discovery.source == "grove-api"
        await until(lambda: "decode" in members and "prefill" in members, "the first listing")
        assert members == {"prefill": ["http://127.0.0.11:8000"], "decode": []}
        await api.put(
            "rag-0-llm-decode-fghij",
            labels=grove_labels("rag-0-llm-decode"),
            ip="127.0.0.12",
            namespace="team",
            ready=True,
        )
        await until(lambda: members["decode"] == ["http://127.0.0.12:8000"], "the decode pod to become ready")
        await api.delete("rag-0-llm-prefill-abcde", namespace="team")
        await until(lambda: members["prefill"] == [], "the prefill pod to go")
        assert (
            "list app.kubernetes.io/part-of=rag,grove.io/podcliqueset-replica-index=0,"
            "grove.io/podclique=rag-0-llm-decode" in api.calls
        )
    finally:
        await discovery.stop()


@pytest.mark.asyncio(loop_scope="session")
async def test_grove_discovery_falls_back_to_dns_when_the_api_refuses(
    kube_api: Callable[..., FakePodsAPI],
) -> None:
    api = kube_api(forbidden=True)
    await api.start()
    live = {"rag-0-llm-0.rag-0.team.svc.cluster.local", "rag-0-llm-1.rag-0.team.svc.cluster.local"}

    async def resolves(host: str, port: int) -> bool:
        return host in live

    members: dict[str, list[str]] = {}
    config = DiscoveryConfig(mode="grove", worker_clique="llm", api_server=api.url, worker_port=8123)
    discovery = Discovery(
        config, lambda role, urls: members.__setitem__(role, urls), env=GROVE, resolver=resolves
    )
    await discovery.start()
    await discovery.stop()
    assert discovery.source == "grove-dns"
    assert members == {"worker": [f"http://{name}:8123" for name in sorted(live)]}
    with pytest.raises(DiscoveryError, match="cannot list pods through the Kubernetes API"):
        strict = DiscoveryConfig(mode="grove", worker_clique="llm", api_server=api.url, use_api="yes")
        await Discovery(strict, lambda role, urls: None, env=GROVE).start()


@pytest.mark.asyncio(loop_scope="session")
async def test_grove_discovery_needs_a_clique_and_a_leader_for_groups() -> None:
    with pytest.raises(RouterConfigError, match="--decode-group needs --decode-clique"):
        await Discovery(DiscoveryConfig(mode="grove", decode_group="g"), lambda r, u: None, env=GROVE).start()
    with pytest.raises(RouterConfigError, match="needs --prefill-clique and --decode-clique"):
        await Discovery(DiscoveryConfig(mode="grove"), lambda r, u: None, env=GROVE).start()


@pytest.mark.asyncio(loop_scope="session")
async def test_router_membership_follows_pod_readiness_without_a_restart(
    kube_api: Callable[..., FakePodsAPI],
    fakes: MakeFake,
) -> None:
    worker = await fakes()
    port = int(worker.url.rsplit(":", 1)[1])
    api = kube_api()
    await api.start()
    await api.put("llm-0", labels={"app": "llm"}, ip="127.0.0.1", ready=True)
    config = load_config(
        overrides={
            "port": 0,
            "drain_timeout": 1,
            "discovery": {
                "mode": "kubernetes",
                "worker_selector": "app=llm",
                "worker_port": port,
                "api_server": api.url,
                "namespace": "default",
                "watch_timeout": 5,
            },
        }
    )
    server = RouterServer(config)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/v1/completions", json=COMPLETION) as r:
                assert r.status == 200
            await api.put("llm-0", labels={"app": "llm"}, ip="127.0.0.1", ready=False)
            await until(lambda: not server.router.pools["worker"].workers, "the pod to leave the pool")
            async with http.post(f"{server.url}/v1/completions", json=COMPLETION) as r:
                assert r.status == 503
            await api.put("llm-0", labels={"app": "llm"}, ip="127.0.0.1", ready=True)
            await until(lambda: bool(server.router.pools["worker"].available()), "the pod to come back")
            async with http.post(f"{server.url}/v1/completions", json=COMPLETION) as r:
                assert r.status == 200
    finally:
        await server.stop()
    assert len(worker.completions()) == 2
