"""``deploy`` judges the PodCliqueSet by the Grove the cluster runs: its operator ConfigMap and bindings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grove_pipelines import yamlio
from grove_pipelines.kube.config import connect
from grove_pipelines.kube.grove_cluster import live_grove_cluster
from tests.kube.apiserver import ApiServerDouble
from tests.kube.conftest import Cli


def _operator_configmap(config: dict[str, object]) -> dict[str, object]:
    body = {"apiVersion": "operator.config.grove.io/v1alpha1", "kind": "OperatorConfiguration", **config}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "grove-operator-config",
            "namespace": "grove-system",
            "labels": {
                "app.kubernetes.io/component": "operator-configmap",
                "app.kubernetes.io/part-of": "grove",
            },
        },
        "data": {"config.yaml": yamlio.dump(body)},
    }


def test_the_live_configuration_and_bindings_are_read(apiserver: ApiServerDouble, kubeconfig: Path) -> None:
    client = connect()
    default = live_grove_cluster(client)  # nothing readable yet: a default Helm install, no bindings
    assert (default.config.default_scheduler, default.config.tas_enabled, default.bindings) == (
        "default-scheduler", False, {},
    )  # fmt: skip
    apiserver.add(
        "/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "grove-system"}}
    )
    apiserver.add("/v1/configmaps", _operator_configmap({"topologyAwareScheduling": {"enabled": True}}))
    apiserver.add(
        "grove.io/v1alpha1/clustertopologybindings",
        {"apiVersion": "grove.io/v1alpha1", "kind": "ClusterTopologyBinding", "metadata": {"name": "fabric"},
         "spec": {"levels": [{"domain": "rack", "key": "r"}, {"domain": "host", "key": "kubernetes.io/hostname"}]}},
    )  # fmt: skip
    live = live_grove_cluster(client)
    assert live.config.tas_enabled and live.bindings["fabric"].domains == ["rack", "host"]


def test_deploy_refuses_what_this_operator_would_refuse(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, pipeline_file: Callable[..., str]
) -> None:
    apiserver.add(
        "/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "grove-system"}}
    )
    kai_default = {
        "scheduler": {"profiles": [{"name": "kai-scheduler"}], "defaultProfileName": "kai-scheduler"}
    }
    apiserver.add("/v1/configmaps", _operator_configmap(kai_default))
    refused = cli("deploy", pipeline_file())
    assert refused.code == 1 and "[kai-queue]" in refused.err, refused.err
    assert apiserver.items("grove.io/v1alpha1/podcliquesets") == []
