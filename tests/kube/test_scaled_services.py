"""A deployed pipeline's Services, after ``kubectl scale`` of its PodCliqueSet to two replicas, select the
pods the Grove double makes for both replicas: each Service its stage's, and no other stage's.

The expected PodCliques are written out by hand from grove-runtime.md §1.1 (``<pcs>-<i>-<clique>``).
"""

from __future__ import annotations

import pytest

from grove_pipelines.grove.compiler import compile_graph
from tests.grove.conftest import clique, rag_graph
from tests.kube.apiserver.grove import GroveSim
from tests.kube.apiserver.pods import PCS, POD
from tests.kube.apiserver.store import Store

pytestmark = pytest.mark.timeout(60)

EXPECTED = {
    "rag": {"rag-0-frontend", "rag-1-frontend"},
    "rag-retrieve": {"rag-0-retrieve", "rag-1-retrieve"},
}


def test_each_service_selects_its_stage_in_both_replicas() -> None:
    documents = compile_graph(rag_graph()).documents()
    pcs = documents[0]
    pcs["spec"]["replicas"] = 2
    clique(pcs, "retrieve")["labels"]["app.kubernetes.io/part-of"] = "someone-else"  # Grove's key wins
    store = Store()
    store.put(PCS, pcs)
    grove = GroveSim(store)
    for _ in range(20):
        if not grove.reconcile():
            break
    pods = store.items(POD, "default")
    assert {p["metadata"]["labels"]["grove.io/podcliqueset-replica-index"] for p in pods} == {"0", "1"}
    services = {d["metadata"]["name"]: d["spec"]["selector"] for d in documents if d["kind"] == "Service"}
    assert set(services) == set(EXPECTED)
    for name, selector in services.items():
        selected = {
            p["metadata"]["labels"]["grove.io/podclique"]
            for p in pods
            if selector.items() <= p["metadata"]["labels"].items()
        }
        assert selected == EXPECTED[name], name
