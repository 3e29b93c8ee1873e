"""The generic client against the double: error mapping, retries, apply semantics, watch, scale."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from grove_pipelines.errors import KubeError
from grove_pipelines.kube import connect
from grove_pipelines.kube.errors import (
    TEXT_ERROR_MAX_SIZE,
    KubeAPIError,
    KubeBadRequestError,
    KubeConflictError,
    KubeForbiddenError,
    KubeInvalidError,
    KubeNotFoundError,
    KubeServerError,
    KubeTooManyRequestsError,
    KubeUnauthorizedError,
)
from tests.kube.apiserver import ApiServerDouble

SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "demo"},
    "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80}]},
}


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, KubeBadRequestError),
        (401, KubeUnauthorizedError),
        (403, KubeForbiddenError),
        (404, KubeNotFoundError),
        (409, KubeConflictError),
        (422, KubeInvalidError),
        (418, KubeAPIError),
        (501, KubeServerError),
    ],
)
def test_statuses_map_to_named_errors(
    apiserver: ApiServerDouble, kubeconfig: Path, status: int, cls: type[KubeAPIError]
) -> None:
    apiserver.fail("/services/web", status, times=5, retry_after=0)
    with connect() as client, pytest.raises(cls) as caught:
        client.request("GET", "/api/v1/namespaces/demo/services/web", action="read Service demo/web")
    assert type(caught.value) is cls and caught.value.status == status
    assert str(caught.value).startswith(
        f"cannot read Service demo/web: injected fault {status} (HTTP {status}"
    )
    assert "\n" not in str(caught.value)


def test_non_status_bodies_are_cut(apiserver: ApiServerDouble, kubeconfig: Path) -> None:
    apiserver.fail("/services/web", 502, times=5, retry_after=0, text="<html>" + "x" * 5000 + "</html>")
    with connect() as client, pytest.raises(KubeServerError) as caught:
        client.request("GET", "/api/v1/namespaces/demo/services/web", action="read it")
    message = str(caught.value)
    assert "x" * TEXT_ERROR_MAX_SIZE not in message and "<html>" + "x" * (TEXT_ERROR_MAX_SIZE - 6) in message
    assert len(message) < TEXT_ERROR_MAX_SIZE + 60


def test_429_and_5xx_are_retried_honouring_retry_after(
    apiserver: ApiServerDouble, kubeconfig: Path, caplog: pytest.LogCaptureFixture
) -> None:
    apiserver.fail("/version", 429, times=1, retry_after=0)
    apiserver.fail("/version", 503, times=1, retry_after=0)
    with caplog.at_level(logging.WARNING, logger="grove_pipelines.kube"), connect() as client:
        assert client.server_version()["gitVersion"] == "v1.31.0-double"
    assert len(apiserver.calls("GET", "/version")) == 3
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "attempt 1/3 failed",
        "attempt 2/3 failed",
    ]
    apiserver.fail("/version", 429, times=3, retry_after=0)
    with connect() as client, pytest.raises(KubeTooManyRequestsError) as caught:
        client.server_version()
    assert caught.value.retry_after == 0


def test_every_error_is_a_grove_pipelines_error(apiserver: ApiServerDouble, kubeconfig: Path) -> None:
    with connect() as client, pytest.raises(KubeError):
        client.resource("grove.io/v1alpha1", "PodGangSet")  # renamed long ago: not served


def test_apply_owns_fields_and_drops_what_it_no_longer_applies(
    apiserver: ApiServerDouble, kubeconfig: Path
) -> None:
    labelled = {**SVC, "metadata": {**SVC["metadata"], "labels": {"a": "1", "b": "2"}}}
    with connect() as client:
        created = client.apply(labelled)
        [entry] = created["metadata"]["managedFields"]
        assert entry["manager"] == "grove-pipelines" and entry["operation"] == "Apply"
        assert entry["fieldsV1"]["f:metadata"]["f:labels"] == {"f:a": {}, "f:b": {}}
        again = client.apply({**SVC, "metadata": {**SVC["metadata"], "labels": {"a": "1"}}})
        assert again["metadata"]["labels"] == {"a": "1"}  # b was only ours: applying without it removes it
        assert client.get("v1", "Service", "web", "demo")["metadata"]["labels"] == {"a": "1"}  # type: ignore[index]


def test_dry_run_apply_answers_without_persisting(apiserver: ApiServerDouble, kubeconfig: Path) -> None:
    with connect() as client:
        answer = client.apply(SVC, dry_run=True)
        assert answer["spec"]["type"] == "ClusterIP"
        assert client.get("v1", "Service", "web", "demo") is None


def test_invalid_grove_object_lists_the_fields(apiserver: ApiServerDouble, kubeconfig: Path) -> None:
    pcs = {
        "apiVersion": "grove.io/v1alpha1",
        "kind": "PodCliqueSet",
        "metadata": {"name": "p", "namespace": "demo"},
        "spec": {
            "replicas": 1,
            "template": {
                "cliques": [
                    {
                        "name": "a",
                        "spec": {
                            "replicas": 1,
                            "podSpec": {"containers": [{"name": "c", "image": "busybox"}]},
                            "colour": "red",
                        },
                    }
                ]
            },
        },
    }
    with connect() as client:
        with pytest.raises(
            KubeBadRequestError
        ) as refused:  # strict decoding fails first: 400, as kube-apiserver
            client.apply(pcs)
        assert 'strict decoding error: unknown field "spec.template.cliques[0].spec.colour"' in str(
            refused.value
        )
        del pcs["spec"]["template"]["cliques"][0]["spec"]["colour"]
        with pytest.raises(KubeInvalidError) as caught:
            client.apply(pcs)
    assert sorted(caught.value.causes) == ["spec.template.cliques[0].spec.roleName: Required value"]


def test_scale_and_watch(apiserver: ApiServerDouble, kubeconfig: Path) -> None:
    with connect() as client:
        start = client.list("v1", "Service", "demo")["metadata"]["resourceVersion"]
        client.apply(SVC)
        events = list(client.watch("v1", "Service", "demo", resource_version=start, timeout_seconds=1))
        changes = [(e["type"], e["object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"]
        assert changes == [("ADDED", "web")]
        assert events[-1]["type"] == "BOOKMARK"  # asked for (allowWatchBookmarks): the version to resume from
        with pytest.raises(KubeNotFoundError):
            client.scale("grove.io/v1alpha1", "PodClique", "nope", "demo", 2)
