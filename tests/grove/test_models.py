"""The pydantic mirrors: camelCase on the wire, snake_case in Python, unknown fields rejected, lossless."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from grove_pipelines.grove import kube_objects
from grove_pipelines.grove.kube_model import KubeModel, to_dict
from grove_pipelines.grove.podcliqueset import PodCliqueSet, PodCliqueSpec


def test_compiled_manifest_round_trips_through_the_model(pcs: dict[str, Any]) -> None:
    model = PodCliqueSet.model_validate(pcs)
    assert to_dict(model) == pcs
    assert model.spec.template.cliques[0].spec.role_name == "frontend"
    assert model.spec.template.clique_startup_type == "CliqueStartupTypeExplicit"


@pytest.mark.parametrize(
    ("model", "raw"),
    [
        (kube_objects.ServiceAccount, {"metadata": {"name": "s", "namespace": "ns"}}),
        (
            kube_objects.Role,
            {
                "metadata": {"name": "r"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
            },
        ),
        (
            kube_objects.RoleBinding,
            {
                "metadata": {"name": "b"},
                "subjects": [{"kind": "ServiceAccount", "name": "a"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            },
        ),
        (
            kube_objects.Service,
            {
                "metadata": {"name": "s"},
                "spec": {"selector": {"a": "b"}, "ports": [{"port": 80, "targetPort": "http"}]},
            },
        ),
    ],
)
def test_core_objects_round_trip(model: type[KubeModel], raw: dict[str, Any]) -> None:
    dumped = to_dict(model.model_validate(raw))
    assert dumped.pop("kind") == model.__name__
    dumped.pop("apiVersion")
    assert dumped == raw


def test_core_subset_is_strict() -> None:
    with pytest.raises(ValidationError, match="clusterIP"):
        kube_objects.Service.model_validate(
            {"metadata": {"name": "s"}, "spec": {"clusterIP": "None", "ports": []}}
        )


def test_aliases_are_camel_case_and_names_are_accepted() -> None:
    spec = PodCliqueSpec(
        role_name="a", replicas=1, min_available=1, pod_spec=kube_objects.PodSpec(containers=[])
    )
    assert list(to_dict(spec)) == ["roleName", "replicas", "minAvailable", "podSpec"]
    again = PodCliqueSpec.model_validate({"roleName": "a", "replicas": 2, "podSpec": {"containers": []}})
    assert again.replicas == 2 and again.min_available is None


def test_unknown_fields_are_rejected_with_their_location(pcs: dict[str, Any]) -> None:
    pcs["spec"]["template"]["cliques"][1]["spec"]["minAvailabel"] = 1
    with pytest.raises(ValidationError) as info:
        PodCliqueSet.model_validate(pcs)
    assert info.value.errors()[0]["loc"][-1] == "minAvailabel"
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_wrong_kind_is_rejected(pcs: dict[str, Any]) -> None:
    pcs["kind"] = "PodGangSet"
    with pytest.raises(ValidationError, match="PodCliqueSet"):
        PodCliqueSet.model_validate(pcs)
