"""The double answers as kube-apiserver does where deploy, ``status --wait`` and discovery depend on it.

Each test drives the double over real HTTP and checks one behaviour the double used to get wrong: list
types from the CRD in server-side apply, field ownership across updates, the status/spec split between
endpoints, RBAC on subresources (strict decoding's 400 is covered in ``test_client``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.kube.apiserver import ApiServerDouble

PCS_PATH = "/apis/grove.io/v1alpha1/namespaces/demo/podcliquesets"


def _call(api: ApiServerDouble, method: str, path: str, body: Any = None, *, content: str = "application/json",
          **query: str) -> tuple[int, dict[str, Any]]:  # fmt: skip
    url = api.url + path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {api.token}")
    request.add_header("Content-Type", content)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _apply(
    api: ApiServerDouble, obj: dict[str, Any], manager: str, **query: str
) -> tuple[int, dict[str, Any]]:
    path = f"{PCS_PATH}/{obj['metadata']['name']}"
    return _call(
        api, "PATCH", path, obj, content="application/apply-patch+yaml", fieldManager=manager, **query
    )


def _pcs(groups: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    cliques = [{"name": n, "spec": {"roleName": n, "replicas": 1, "minAvailable": 1,
                                    "podSpec": {"containers": [{"name": "c", "image": "busybox"}]}}}
               for n in ("a", "b")]  # fmt: skip
    return {"apiVersion": "grove.io/v1alpha1", "kind": "PodCliqueSet", "metadata": {"name": "p", "namespace": "demo"},
            "spec": {"replicas": 1, **spec, "template": {"cliques": cliques, "podCliqueScalingGroups": groups}}}  # fmt: skip


def _fields(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    return next(m["fieldsV1"] for m in obj["metadata"]["managedFields"] if m["manager"] == manager)


@pytest.fixture
def api() -> Any:
    with ApiServerDouble(grove_running=False) as double:
        yield double


def test_apply_follows_the_crds_list_types(api: ApiServerDouble) -> None:
    """``cliques`` is a map keyed by name; ``podCliqueScalingGroups`` has no list type, so it is atomic."""
    code, live = _apply(api, _pcs([{"name": "g1", "cliqueNames": ["a"]}]), "deployer")
    assert code in (200, 201), live
    template = _fields(live, "deployer")["f:spec"]["f:template"]
    assert 'k:{"name":"a"}' in template["f:cliques"]
    assert template["f:podCliqueScalingGroups"] == {}  # one leaf: the whole list
    # A second applier with another list must conflict on the whole list, not merge its group in beside g1
    # (Grove would then see a scaling group nobody declared).
    code, answer = _apply(api, _pcs([{"name": "g2", "cliqueNames": ["b"]}]), "someone-else")
    assert code == 409
    assert [c["field"] for c in answer["details"]["causes"]] == [".spec.template.podCliqueScalingGroups"]


def test_an_update_keeps_earlier_fields_and_takes_over_what_it_changes(api: ApiServerDouble) -> None:
    _apply(api, _pcs([]), "deployer")
    patch = "application/merge-patch+json"
    _call(
        api,
        "PATCH",
        f"{PCS_PATH}/p",
        {"metadata": {"labels": {"team": "x"}}},
        content=patch,
        fieldManager="ed",
    )
    code, live = _call(
        api, "PATCH", f"{PCS_PATH}/p", {"spec": {"replicas": 3}}, content=patch, fieldManager="ed"
    )
    assert code == 200
    mine = _fields(live, "ed")
    assert "f:labels" in mine["f:metadata"] and "f:replicas" in mine["f:spec"]  # both updates, not the last
    assert "f:replicas" not in _fields(live, "deployer")["f:spec"]  # taken from the applier
    code, answer = _apply(api, _pcs([], replicas=1), "deployer")  # so re-applying the old value conflicts
    assert code == 409 and [c["field"] for c in answer["details"]["causes"]] == [".spec.replicas"]


def test_status_and_spec_change_only_through_their_own_endpoints(api: ApiServerDouble) -> None:
    _apply(api, _pcs([]), "deployer")
    patch = "application/merge-patch+json"
    code, live = _call(api, "PATCH", f"{PCS_PATH}/p/status", {"spec": {"replicas": 7}, "status": {"replicas": 2}},
                       content=patch)  # fmt: skip
    assert code == 200 and live["spec"]["replicas"] == 1 and live["status"]["replicas"] == 2
    code, live = _call(api, "PATCH", f"{PCS_PATH}/p", {"spec": {"replicas": 4}, "status": {"replicas": 9}},
                       content=patch)  # fmt: skip
    assert code == 200 and live["spec"]["replicas"] == 4 and live["status"]["replicas"] == 2


def test_rbac_names_subresources_on_their_own(api: ApiServerDouble) -> None:
    _apply(api, _pcs([]), "deployer")
    scale = {"spec": {"replicas": 2}}
    api.forbid("patch", "podcliquesets")  # the main resource only: /scale is another RBAC resource
    code, _ = _call(api, "PATCH", f"{PCS_PATH}/p/scale", scale, content="application/merge-patch+json")
    assert code == 200
    api.forbid("patch", "podcliquesets/scale")
    code, answer = _call(api, "PATCH", f"{PCS_PATH}/p/scale", scale, content="application/merge-patch+json")
    assert code == 403 and 'cannot patch resource "podcliquesets/scale"' in answer["message"]


def _watch_lines(api: ApiServerDouble, path: str, **query: str) -> list[dict[str, Any]]:
    url = api.url + path + "?" + "&".join(f"{k}={v}" for k, v in {"watch": "true", **query}.items())
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api.token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return [json.loads(line) for line in answer.read().splitlines() if line.strip()]


def _pod(name: str, role: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "demo", "labels": {"role": role}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip


def test_a_watch_from_version_0_starts_with_the_current_state(api: ApiServerDouble) -> None:
    api.add("/v1/pods", _pod("p1", "decode"))
    events = _watch_lines(
        api, "/api/v1/namespaces/demo/pods", timeoutSeconds="1", labelSelector="role%3Ddecode"
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "p1")]


def test_an_object_leaving_the_selector_is_deleted_for_the_watcher(api: ApiServerDouble) -> None:
    """The router's discovery drops a pod relabelled out of its role only if the server says DELETED."""
    api.add("/v1/pods", _pod("p1", "decode"))
    start = api.store.current_rv
    api.add("/v1/pods", _pod("p1", "prefill"))
    events = _watch_lines(api, "/api/v1/namespaces/demo/pods", resourceVersion=str(start), timeoutSeconds="1",
                          labelSelector="role%3Ddecode")  # fmt: skip
    assert [(e["type"], e["object"]["metadata"]["labels"]["role"]) for e in events] == [
        ("DELETED", "prefill")
    ]


def test_a_compacted_version_gets_410_and_bookmarks_are_sent_when_asked(api: ApiServerDouble) -> None:
    start = api.store.current_rv
    api.add("/v1/pods", _pod("p1", "decode"))
    api.compact()
    (error,) = _watch_lines(
        api, "/api/v1/namespaces/demo/pods", resourceVersion=str(start), timeoutSeconds="1"
    )
    assert error["type"] == "ERROR" and error["object"]["code"] == 410
    events = _watch_lines(api, "/api/v1/namespaces/demo/pods", resourceVersion=str(api.store.current_rv),
                          timeoutSeconds="1", allowWatchBookmarks="true")  # fmt: skip
    assert events and all(e["type"] == "BOOKMARK" for e in events)
    assert events[-1]["object"]["metadata"]["resourceVersion"] == str(api.store.current_rv)


def _owned_pod(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    pod = _pod(name, "decode")
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "grove.io/v1alpha1", "kind": "PodCliqueSet",
                                           "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}]  # fmt: skip
    return pod


def _delete(api: ApiServerDouble, policy: str) -> tuple[int, dict[str, Any]]:
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": policy}
    return _call(api, "DELETE", f"{PCS_PATH}/p", body)


@pytest.mark.parametrize("policy", ["Foreground", "Background", "Orphan"])
def test_delete_options_and_garbage_collection(api: ApiServerDouble, policy: str) -> None:
    """Deletion honours propagationPolicy and dependents go by the garbage collector, not at once: a
    recreate (deploy --recreate) must wait for a foreground delete to finish."""
    _, owner = _apply(api, _pcs([]), "deployer")
    api.add("/v1/pods", _owned_pod("p1", owner))
    code, answer = _delete(api, policy)
    assert code == 200
    pcs = api.get("grove.io/v1alpha1/podcliquesets", "demo", "p")
    if policy == "Foreground":  # still there, marked, until its dependents are gone
        assert answer["metadata"]["finalizers"] == ["foregroundDeletion"] and pcs is not None
    else:
        assert pcs is None
    assert api.get("/v1/pods", "demo", "p1") is not None  # nothing collected yet
    api.settle()  # the controllers run (Grove and the garbage collector)
    assert api.get("grove.io/v1alpha1/podcliquesets", "demo", "p") is None
    kept = api.get("/v1/pods", "demo", "p1")
    assert (kept is not None) == (policy == "Orphan")
    if kept is not None:
        assert not kept["metadata"].get("ownerReferences")


def test_built_in_objects_are_validated(api: ApiServerDouble) -> None:
    """A Service without ports or a RoleBinding whose roleRef changes is refused (422), as kube-apiserver
    does: deploy must not learn of such mistakes only on a real cluster."""
    services = "/api/v1/namespaces/demo/services"
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"a": "b"}},
    }
    code, answer = _call(
        api, "PATCH", f"{services}/web", bad, content="application/apply-patch+yaml", fieldManager="d"
    )
    assert code == 422 and [c["field"] for c in answer["details"]["causes"]] == ["spec.ports"]
    headless = {**bad, "spec": {"clusterIP": "None", "selector": {"a": "b"}}}
    code, _ = _call(
        api, "PATCH", f"{services}/web", headless, content="application/apply-patch+yaml", fieldManager="d"
    )
    assert code in (200, 201)
    bindings = "/apis/rbac.authorization.k8s.io/v1/namespaces/demo/rolebindings"
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
               "subjects": [{"kind": "ServiceAccount", "name": "router"}]}  # fmt: skip
    code, _ = _call(
        api, "PATCH", f"{bindings}/rb", binding, content="application/apply-patch+yaml", fieldManager="d"
    )
    assert code in (200, 201)
    binding["roleRef"]["name"] = "writer"
    code, answer = _call(
        api, "PATCH", f"{bindings}/rb", binding, content="application/apply-patch+yaml", fieldManager="d"
    )
    assert code == 422 and "cannot change roleRef" in answer["message"]
