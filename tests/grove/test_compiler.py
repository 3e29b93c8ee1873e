"""The mapping graph → PodCliqueSet (DESIGN §4.2 and the runtime contract)."""

from __future__ import annotations

from typing import Any

import pytest

from grove_pipelines.errors import CompileError
from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.spec import PD, Autoscaling, LLMSpec, PipelineSpec, PythonStageSpec, Role, Topology
from tests.grove.conftest import clique, rag_graph


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _containers(pcs: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    pod = clique(pcs, name)["spec"]["podSpec"]
    return {c["name"]: c for c in [*pod.get("initContainers", []), *pod["containers"]]}


def test_set_level_fields_are_explicit(pcs: dict[str, Any]) -> None:
    assert pcs["spec"]["replicas"] == 1
    template = pcs["spec"]["template"]
    assert template["cliqueStartupType"] == "CliqueStartupTypeExplicit"
    assert template["headlessServiceConfig"] == {"publishNotReadyAddresses": True}
    assert [c["name"] for c in template["cliques"]] == [
        "frontend", "retrieve", "chat-prefill", "chat-dl", "chat-dw", "embed",
    ]  # fmt: skip
    for c in template["cliques"]:
        assert c["spec"]["roleName"] == c["name"]
        assert {"replicas", "minAvailable"} <= set(c["spec"])


def test_entry_and_python_stage_run_the_pipeline_server(pcs: dict[str, Any]) -> None:
    server = _containers(pcs, "frontend")["server"]
    assert server["command"] == ["grove-pipelines", "serve", "pipelines/rag.py:rag", "--port", "8000"]
    assert server["ports"] == [{"name": "http", "containerPort": 8000}]
    assert server["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    stage = _containers(pcs, "retrieve")["server"]
    assert stage["command"] == [
        "grove-pipelines", "serve", "pipelines/rag.py:rag", "--stage", "retrieve", "--port", "8000",
    ]  # fmt: skip
    assert _env(stage)["TOP_K"] == "4"


def test_callers_reach_stages_through_services_and_llms_through_routers(
    rag_docs: list[dict[str, Any]],
) -> None:
    pcs = rag_docs[0]
    env = _env(_containers(pcs, "frontend")["server"])
    assert env["GP_STAGE_URL_RETRIEVE"] == "http://rag-retrieve:8000"
    assert env["GP_LLM_URL_CHAT"] == "http://127.0.0.1:9000"
    assert not any(name.startswith("GROVE_") for name in env)
    services = {d["metadata"]["name"]: d for d in rag_docs if d["kind"] == "Service"}
    assert services["rag-retrieve"]["spec"]["selector"] == {
        "app.kubernetes.io/part-of": "rag", "grove-pipelines.io/stage": "retrieve",
    }  # fmt: skip
    assert services["rag"]["spec"]["selector"] == {
        "app.kubernetes.io/part-of": "rag", "grove-pipelines.io/stage": "frontend",
    }  # fmt: skip
    assert services["rag"]["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]


def test_router_sidecar_command_lines(pcs: dict[str, Any]) -> None:
    router = _containers(pcs, "frontend")["router-chat"]
    assert router["command"] == [
        "grove-pipelines", "router", "--host", "0.0.0.0", "--port", "9000", "--discovery", "grove",
        "--prefill-clique", "chat-prefill", "--decode-clique", "chat-dl", "--decode-group", "chat-d",
        "--worker-port", "8000", "--policy", "prefix",
    ]  # fmt: skip
    assert router["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 9000}
    aggregated = _containers(pcs, "retrieve")["router-embed"]["command"]
    assert aggregated[-6:] == ["--worker-clique", "embed", "--worker-port", "8000", "--policy", "prefix"]
    assert _env(_containers(pcs, "retrieve")["server"])["GP_LLM_URL_EMBED"] == "http://127.0.0.1:9000"


def test_router_pods_get_a_service_account_with_read_only_pod_access(rag_docs: list[dict[str, Any]]) -> None:
    pcs = rag_docs[0]
    assert clique(pcs, "frontend")["spec"]["podSpec"]["serviceAccountName"] == "rag-router"
    assert "serviceAccountName" not in clique(pcs, "embed")["spec"]["podSpec"]
    by_kind = {d["kind"]: d for d in rag_docs}
    assert by_kind["Role"]["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    assert by_kind["RoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "rag-router", "namespace": "default"}
    ]
    assert (
        by_kind["RoleBinding"]["roleRef"]["name"]
        == by_kind["ServiceAccount"]["metadata"]["name"]
        == "rag-router"
    )


def test_no_rbac_without_routers() -> None:
    graph = PipelineGraph(PipelineSpec(name="tools"), [PythonStageSpec(name="search")], [(ENTRY, "search")])
    kinds = [d["kind"] for d in compile_graph(graph).documents()]
    assert kinds == ["PodCliqueSet", "Service", "Service", "NetworkPolicy", "NetworkPolicy"]


def test_vllm_cliques(pcs: dict[str, Any]) -> None:
    prefill = _containers(pcs, "chat-prefill")["vllm"]
    assert prefill["command"] == [
        "vllm", "serve", "Qwen/Qwen3-0.6B", "--served-model-name", "chat", "--host", "0.0.0.0", "--port", "8000",
        "--tensor-parallel-size", "1",
        "--kv-transfer-config", '{"kv_connector":"NixlConnector","kv_role":"kv_producer","kv_load_failure_policy":"recompute"}',
        "--shutdown-timeout", "60",
    ]  # fmt: skip
    assert prefill["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    assert clique(pcs, "chat-prefill")["spec"]["podSpec"]["terminationGracePeriodSeconds"] == 70
    assert (
        prefill["resources"]["requests"]["nvidia.com/gpu"]
        == prefill["resources"]["limits"]["nvidia.com/gpu"]
        == 1
    )
    assert prefill["startupProbe"]["failureThreshold"] * prefill["startupProbe"]["periodSeconds"] >= 1800
    assert prefill["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
    assert clique(pcs, "chat-prefill")["spec"]["podSpec"]["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory"}}
    ]
    assert _env(prefill)["VLLM_NIXL_SIDE_CHANNEL_HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    embed = clique(pcs, "embed")
    assert "--kv-transfer-config" not in embed["spec"]["podSpec"]["containers"][0]["command"]
    assert embed["spec"]["autoScalingConfig"] == {
        "minReplicas": 1, "maxReplicas": 3,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
    }  # fmt: skip


def test_multi_node_role_is_a_scaling_group_of_leader_and_workers(pcs: dict[str, Any]) -> None:
    groups = pcs["spec"]["template"]["podCliqueScalingGroups"]
    assert groups == [
        {"name": "chat-d", "cliqueNames": ["chat-dl", "chat-dw"], "replicas": 2, "minAvailable": 1}
    ]
    leader, worker = clique(pcs, "chat-dl")["spec"], clique(pcs, "chat-dw")["spec"]
    assert (leader["replicas"], leader["minAvailable"], worker["replicas"], worker["minAvailable"]) == (
        1,
        1,
        1,
        1,
    )
    assert worker["startsAfter"] == ["chat-dl"]
    lead_cmd = leader["podSpec"]["containers"][0]["command"]
    address = "$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-chat-dl-0.$(GROVE_HEADLESS_SERVICE)"
    assert lead_cmd[lead_cmd.index("--master-addr") + 1] == address
    assert (
        lead_cmd[lead_cmd.index("--nnodes") + 1] == "2" and lead_cmd[lead_cmd.index("--node-rank") + 1] == "0"
    )
    shell = worker["podSpec"]["containers"][0]["command"]
    assert shell[:2] == ["sh", "-c"]
    assert "--node-rank $((GROVE_PCLQ_POD_INDEX + 1))" in shell[2] and shell[2].endswith("--headless")
    assert f"--master-addr {address}" in shell[2]
    kv = '{"kv_connector":"NixlConnector","kv_role":"kv_consumer","kv_load_failure_policy":"recompute"}'
    assert f"'{kv}'" in shell[2]
    # env values never reference $(GROVE_*): only command lines do (portable across Grove versions)
    for spec in (leader, worker):
        assert all("GROVE_" not in str(e) for e in spec["podSpec"]["containers"][0].get("env", []))


def test_starts_after_follows_the_reduced_call_graph(pcs: dict[str, Any]) -> None:
    assert clique(pcs, "frontend")["spec"]["startsAfter"] == ["retrieve", "chat-prefill", "chat-dl"]
    assert clique(pcs, "retrieve")["spec"]["startsAfter"] == ["embed"]
    assert "startsAfter" not in clique(pcs, "chat-prefill")["spec"]
    graph = PipelineGraph(
        PipelineSpec(name="p"), [PythonStageSpec(name="a"), PythonStageSpec(name="b")],
        [(ENTRY, "a"), (ENTRY, "b"), ("a", "b")],
    )  # fmt: skip
    compiled = compile_graph(graph).documents()[0]
    assert clique(compiled, "frontend")["spec"]["startsAfter"] == ["a"]  # not b: a already waits for it


def test_any_order_when_nothing_waits() -> None:
    graph = PipelineGraph(PipelineSpec(name="solo"), [], [])
    assert (
        compile_graph(graph).documents()[0]["spec"]["template"]["cliqueStartupType"]
        == "CliqueStartupTypeAnyOrder"
    )


def test_kai_topology_priority_and_termination_delay() -> None:
    graph = rag_graph(
        scheduler="kai-scheduler", queue="team-a", priority_class="high", termination_delay="15m",
        topology=Topology(topology_name="fabric", required="rack"),
    )  # fmt: skip
    pcs = compile_graph(graph, namespace="llm", image="registry/me:1").documents()[0]
    template = pcs["spec"]["template"]
    assert (template["priorityClassName"], template["terminationDelay"]) == ("high", "15m")
    assert template["topologyConstraint"] == {"topologyName": "fabric", "pack": {"required": "rack"}}
    for c in template["cliques"]:
        assert c["labels"]["kai.scheduler/queue"] == "team-a"
        assert c["spec"]["podSpec"]["schedulerName"] == "kai-scheduler"
    assert pcs["metadata"]["namespace"] == "llm"
    assert _containers(pcs, "frontend")["server"]["image"] == "registry/me:1"
    assert _containers(pcs, "chat-prefill")["vllm"]["image"] == PipelineSpec(name="x").vllm_image


def test_kai_without_queue_is_a_compile_error() -> None:
    with pytest.raises(CompileError, match="needs queue"):
        compile_graph(rag_graph(scheduler="kai-scheduler"))


def test_group_autoscaling_goes_to_scale_config_not_members() -> None:
    big = LLMSpec(name="big", model="m", gpus=8, nodes=2, replicas=2, autoscaling=Autoscaling(max_replicas=4))
    pcs = compile_graph(PipelineGraph(PipelineSpec(name="p"), [big], [(ENTRY, "big")])).documents()[0]
    group = pcs["spec"]["template"]["podCliqueScalingGroups"][0]
    assert group["name"] == "big" and group["cliqueNames"] == ["big-ldr", "big-wkr"]
    assert group["scaleConfig"] == {"minReplicas": 2, "maxReplicas": 4}
    assert all("autoScalingConfig" not in c["spec"] for c in pcs["spec"]["template"]["cliques"])
    router = _containers(pcs, "frontend")["router-big"]["command"]
    assert router[8:12] == ["--worker-clique", "big-ldr", "--worker-group", "big"]


def test_clashing_stage_names_are_a_compile_error() -> None:
    stages = [PythonStageSpec(name="chat"), LLMSpec(name="rechat", model="m")]
    with pytest.raises(CompileError, match="'chat' and 'rechat' clash"):
        compile_graph(PipelineGraph(PipelineSpec(name="p"), stages, []))


def test_absolute_pipeline_refs_are_refused() -> None:
    graph = PipelineGraph(PipelineSpec(name="p", module="/home/me/p.py"), [], [])
    with pytest.raises(CompileError, match="absolute path"):
        compile_graph(graph)


def test_disaggregated_multi_node_prefill_and_single_node_decode_names() -> None:
    llm = LLMSpec(name="m", model="x", gpus=8, disaggregated=PD(prefill=Role(nodes=3), decode=Role()))
    pcs = compile_graph(PipelineGraph(PipelineSpec(name="p"), [llm], [(ENTRY, "m")])).documents()[0]
    names = [c["name"] for c in pcs["spec"]["template"]["cliques"]]
    assert names == ["frontend", "m-pl", "m-pw", "m-decode"]
    assert clique(pcs, "m-pw")["spec"]["replicas"] == 2
    assert pcs["spec"]["template"]["podCliqueScalingGroups"][0]["name"] == "m-p"


def test_volcano_queue_is_a_set_annotation_and_ref_can_be_given() -> None:
    graph = rag_graph(scheduler="volcano", queue="batch")
    pcs = compile_graph(graph, ref="pkg.pipelines:rag").documents()[0]
    assert pcs["metadata"]["annotations"] == {"scheduling.grove.io/volcano-queue": "batch"}
    assert "kai.scheduler/queue" not in clique(pcs, "frontend")["labels"]
    assert _containers(pcs, "frontend")["server"]["command"][2] == "pkg.pipelines:rag"
