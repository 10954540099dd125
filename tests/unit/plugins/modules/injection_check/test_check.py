"""Unit tests for the injection check over API objects (plugins/module_utils/_injection*.py):
the building blocks, one pod at a time, the whole pipeline through check(), and the report.

The inputs are pod manifests the project writes under tests/fixtures/pods/.  The stages one by
one are tested in test_stages.py, the codes table in test_codes.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.okemesh.istio.plugins.module_utils import _injection as inj

FIXTURES = Path(__file__).resolve().parents[4] / "fixtures" / "pods"
CLUSTER = yaml.safe_load((FIXTURES / "cluster.yaml").read_text())


def pod(name: str) -> dict:
    return yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())


def all_pods() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted(FIXTURES.glob("*.yaml")) if p.name != "cluster.yaml"]


def cluster_of(pods, cluster=None) -> inj.Cluster:
    c = cluster or CLUSTER
    return inj.Cluster(
        namespaces=c["namespaces"],
        pods=pods,
        webhook_configurations=c["webhooks"],
        deployments=c["deployments"],
        services=c["services"],
        endpoint_slices=c["endpoint_slices"],
        daemonsets=c["daemonsets"],
    )


def run(pods, *, cluster=None, requested_namespaces=None, **kwargs) -> dict:
    return inj.check(cluster_of(pods, cluster), inj.CheckOptions(namespaces=requested_namespaces, **kwargs))


def ns_info(name: str) -> dict:
    return inj.namespace_mode(next(n for n in CLUSTER["namespaces"] if n["metadata"]["name"] == name))


def classify(name: str, **kwargs) -> dict:
    p = pod(name)
    return inj.classify_pod(
        p,
        ns_info(p["metadata"]["namespace"]),
        inj.injectors(CLUSTER["webhooks"]),
        inj.istiod_deployments(CLUSTER["deployments"]),
        **kwargs,
    )


def codes(result: dict) -> list[str]:
    return sorted(f["code"] for f in result["findings"])


# ---------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("docker.io/istio/proxyv2:1.28.0", "1.28.0"),
        ("docker.io/istio/proxyv2:1.28.0-distroless", "1.28.0"),
        ("registry.local:5000/istio/proxyv2:v1.27.3-debug", "1.27.3"),
        ("registry.local:5000/istio/proxyv2", None),
        ("docker.io/istio/proxyv2@sha256:0123abcd", None),
        ("docker.io/istio/proxyv2:1.28.0@sha256:0123abcd", "1.28.0"),
        ("", None),
    ],
)
def test_image_version(image, version):
    assert inj.image_version(image) == version


@pytest.mark.parametrize(
    ("namespace", "mode", "revision", "conflicts"),
    [
        ("bookinfo", "sidecar", "default", 0),
        ("canary", "revision", "1-28", 0),
        ("tagged", "revision", "prod-stable", 0),
        ("mesh-ambient", "ambient", None, 0),
        ("both-labels", "sidecar", "default", 1),
        ("legacy", "disabled", None, 0),
        ("plain", "none", None, 0),
    ],
)
def test_namespace_mode(namespace, mode, revision, conflicts):
    info = ns_info(namespace)
    assert (info["mode"], info["revision"], len(info["conflicts"])) == (mode, revision, conflicts)


def test_namespace_ambient_and_sidecar_is_flagged():
    info = inj.namespace_mode({"metadata": {"name": "x", "labels": {"istio-injection": "enabled", "istio.io/dataplane-mode": "ambient"}}})
    assert info["mode"] == "sidecar" and info["ambient_and_sidecar"] is True


def test_injectors_index_revisions_and_tags():
    index = inj.injectors(CLUSTER["webhooks"] + [{"metadata": {"name": "unrelated-webhook"}, "webhooks": []}])
    assert sorted(index) == ["1-28", "default", "prod-stable"]
    assert index["prod-stable"]["revision"] == "1-28"
    assert index["prod-stable"]["tag"] == "prod-stable"
    assert index["default"]["services"] == ["istio-system/istiod:443"]
    assert index["default"]["ca_bundle"] is True


def test_injector_without_ca_bundle():
    hooks = copy.deepcopy(CLUSTER["webhooks"][:1])
    hooks[0]["webhooks"][1]["clientConfig"].pop("caBundle")
    index = inj.injectors(hooks)
    assert index["default"]["ca_bundle"] is False
    assert index["default"]["webhooks_without_ca"] == ["namespace.sidecar-injector.istio.io"]


def test_istiod_deployments():
    index = inj.istiod_deployments(CLUSTER["deployments"])
    assert index["default"]["ready"] is True and index["default"]["version"] == "1.28.0"
    assert index["1-28"]["replicas"] == 2 and index["1-28"]["version"] == "1.28.1"


@pytest.mark.parametrize(
    ("manifest", "owner"),
    [
        ("classic", "deployment/reviews-v1"),
        ("host-network", "daemonset/node-agent"),
        ("job-completed", "job/db-migrate"),
        ("bare-plain", "pod/debug-shell"),
    ],
)
def test_owner_follows_replicaset_to_deployment(manifest, owner):
    assert "%s/%s" % inj.owner_of(pod(manifest)) == owner


def test_owner_replicaset_without_template_hash():
    p = pod("classic")
    del p["metadata"]["labels"]["pod-template-hash"]
    assert inj.owner_of(p) == ("replicaset", "reviews-v1-7d8f9c6b5")


# ---------------------------------------------------------------------------------------
# one pod at a time
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("manifest", "status", "severity", "proxy", "issue"),
    [
        ("classic", "injected", "ok", "classic", None),
        ("native", "injected", "ok", "native", None),
        ("ambient", "ambient", "ok", None, None),
        ("ambient-not-captured", "ambient_not_captured", "error", None, "OKM0023"),
        ("opted-out", "excluded", "ok", None, None),
        ("host-network", "excluded", "ok", None, None),
        ("not-ready", "not_ready", "error", "native", "OKM0020"),
        ("app-not-ready", "not_ready", "warning", "classic", "OKM0021"),
        ("stale", "restart_needed", "error", None, "IST0103"),
        ("version-skew", "version_skew", "warning", "native", "IST0158"),
        ("gateway", "gateway", "ok", "classic", None),
        ("job-completed", "completed", "ok", "native", None),
        ("old-revision", "restart_needed", "warning", "native", "OKM0022"),
        ("tagged", "injected", "ok", "native", None),
        ("bare-plain", "not_injected", "ok", None, None),
    ],
)
def test_classify_pod(manifest, status, severity, proxy, issue):
    res = classify(manifest)
    assert (res["status"], res["severity"], res["proxy"]) == (status, severity, proxy), res["reason"]
    assert [i[0] for i in res["issues"]] == ([issue] if issue else [])


def test_native_sidecar_is_in_the_mesh_although_ready_shows_1_of_1():
    res = classify("native")
    assert res["proxy_ready"] is True and res["app_ready"] is True and res["proxy_version"] == "1.28.0"
    assert res["revision"] == "default"


def test_stale_pod_reason_names_the_injector_time():
    res = classify("stale")
    assert "created before the injector webhook existed" in res["reason"]
    fresh = pod("stale")
    fresh["metadata"]["creationTimestamp"] = "2026-04-01T00:00:00Z"
    res = inj.classify_pod(fresh, ns_info("bookinfo"), inj.injectors(CLUSTER["webhooks"]), {})
    assert res["status"] == "restart_needed"
    assert "namespace asked for injection" in res["reason"]


def test_missing_proxy_without_injector_is_not_a_restart():
    res = inj.classify_pod(pod("stale"), ns_info("bookinfo"), {}, {})
    assert res["status"] == "missing_proxy" and res["issues"][0][0] == "IST0103"


def test_expected_proxy_version_overrides_istiod():
    assert classify("classic", proxy_version="1.28.0")["status"] == "injected"
    res = classify("classic", proxy_version="v1.29.0")
    assert res["status"] == "version_skew" and "1.29.0" in res["reason"]


def test_opt_out_by_annotation():
    p = pod("stale")
    p["metadata"]["annotations"] = {"sidecar.istio.io/inject": "false"}
    res = inj.classify_pod(p, ns_info("bookinfo"), inj.injectors(CLUSTER["webhooks"]), {})
    assert res["status"] == "excluded" and "opted out" in res["reason"]


def test_pending_pod_without_ambient_redirection_is_not_ready_not_uncaptured():
    p = pod("ambient-not-captured")
    p["status"] = {"phase": "Pending"}
    res = inj.classify_pod(p, ns_info("mesh-ambient"), {}, {})
    assert (res["status"], res["severity"]) == ("not_ready", "warning")


def test_classic_proxy_that_is_a_plain_init_container_is_not_a_sidecar():
    p = pod("native")
    del p["spec"]["initContainers"][0]["restartPolicy"]
    res = inj.classify_pod(p, ns_info("bookinfo"), inj.injectors(CLUSTER["webhooks"]), {})
    assert res["proxy"] is None and res["status"] == "restart_needed"


# ---------------------------------------------------------------------------------------
# the whole check
# ---------------------------------------------------------------------------------------
def test_default_scope_is_namespaces_that_ask_plus_pod_level_opt_in():
    result = run(all_pods())
    scope = [n["name"] for n in result["namespaces"]]
    # plain, kube-system and legacy do not ask; istio-ingress has a pod that asks (gateway)
    assert scope == ["bookinfo", "both-labels", "canary", "istio-ingress", "mesh-ambient", "tagged"]
    assert {p["name"] for p in result["pods"]}.isdisjoint({"debug-shell"})


def test_full_result_counts_and_findings():
    result = run(all_pods())
    s = result["summary"]
    assert s["by_status"] == {
        "injected": 3,
        "gateway": 1,
        "ambient": 1,
        "excluded": 2,
        "completed": 1,
        "not_ready": 2,
        "restart_needed": 2,
        "version_skew": 1,
        "ambient_not_captured": 1,
    }
    assert s["pods"] == 14
    assert s["by_namespace"]["bookinfo"]["pods"] == 9
    assert s["by_namespace"]["bookinfo"]["by_status"]["restart_needed"] == 1
    assert codes(result) == ["IST0103", "IST0123", "IST0158", "OKM0020", "OKM0021", "OKM0022", "OKM0023"]
    stale = next(f for f in result["findings"] if f["code"] == "IST0103")
    assert stale["object"] == "deployment/reviews-v2" and stale["pods"] == ["reviews-v2-9c8d7e6f5-old01"]
    assert stale["remedy"] == "kubectl rollout restart deployment/reviews-v2 -n bookinfo"
    assert stale["message"] == "deployment/reviews-v2: 1 pod without istio-proxy, restart needed"
    skew = next(f for f in result["findings"] if f["code"] == "IST0158")
    assert skew["object"] == "namespace/bookinfo" and skew["pods"] == ["reviews-v3-4d5e6f7a8-skew1"]
    assert "proxy 1.27.3, control plane 1.28.0" in skew["message"]
    assert s["errors"] == 3 and s["warnings"] == 4
    assert inj.verdict(result, "error") is True
    assert inj.verdict(result, "never") is False


def test_healthy_mesh_passes_every_threshold():
    cluster = dict(CLUSTER, namespaces=[n for n in CLUSTER["namespaces"] if n["metadata"]["name"] != "both-labels"])
    result = run([pod("classic"), pod("native"), pod("gateway"), pod("ambient"), pod("opted-out"), pod("tagged")], cluster=cluster)
    assert result["findings"] == []
    assert inj.verdict(result, "warning") is False and inj.converged(result, "warning") is True
    cp = result["control_plane"]
    assert [i["name"] for i in cp["istiod"]] == ["istiod", "istiod-1-28"]
    assert sorted(i["key"] for i in cp["injectors"]) == ["1-28", "default", "prod-stable"]
    assert cp["ztunnel"]["ok"] is True


def test_findings_aggregate_per_workload():
    pods = []
    for i in range(3):
        p = pod("stale")
        p["metadata"]["name"] = f"reviews-v2-9c8d7e6f5-old0{i}"
        pods.append(p)
    result = run(pods, requested_namespaces=["bookinfo"])
    f = [x for x in result["findings"] if x["code"] == "IST0103"]
    assert len(f) == 1 and len(f[0]["pods"]) == 3
    assert f[0]["message"] == "deployment/reviews-v2: 3 pods without istio-proxy, restart needed"


def test_explicit_unlabelled_namespace_is_IST0102():
    result = run([pod("bare-plain")], requested_namespaces=["plain"])
    assert codes(result) == ["IST0102"]
    f = result["findings"][0]
    assert f["severity"] == "warning" and f["remedy"] == "kubectl label namespace plain istio-injection=enabled"
    assert result["pods"][0]["status"] == "not_injected"
    assert inj.verdict(result, "error") is False and inj.verdict(result, "warning") is True


def test_unknown_namespace_is_an_error():
    result = run([], requested_namespaces=["nope"])
    assert codes(result) == ["OKM0011"]


def test_no_namespace_asks():
    cluster = dict(CLUSTER, namespaces=[{"metadata": {"name": "default"}}])
    result = run([], cluster=cluster)
    assert codes(result) == ["OKM0010"]


def test_control_plane_failures():
    cluster = copy.deepcopy(CLUSTER)
    cluster["deployments"][0]["status"]["readyReplicas"] = 0
    cluster["webhooks"][0]["webhooks"][0]["clientConfig"]["caBundle"] = ""
    cluster["endpoint_slices"] = cluster["endpoint_slices"][1:]
    result = run([pod("classic")], cluster=cluster, requested_namespaces=["bookinfo"])
    assert codes(result) == ["OKM0002", "OKM0004", "OKM0006"]
    msg = next(f["message"] for f in result["findings"] if f["code"] == "OKM0002")
    assert msg == "istiod is not ready (istio-system, 0/1)"


def test_missing_injector_and_service():
    cluster = copy.deepcopy(CLUSTER)
    cluster["services"] = [s for s in cluster["services"] if s["metadata"]["name"] != "istiod-1-28"]
    cluster["webhooks"] = [w for w in cluster["webhooks"] if w["metadata"]["name"] != "istio-sidecar-injector"]
    result = run([pod("stale"), pod("tagged")], cluster=cluster, requested_namespaces=["bookinfo", "tagged"])
    assert codes(result) == ["IST0103", "OKM0003", "OKM0005"]
    missing = next(f for f in result["findings"] if f["code"] == "IST0103")
    assert missing["severity"] == "error" and missing["remedy"].startswith("fix the injector webhook")
    assert result["pods"][0]["status"] == "missing_proxy"


def test_missing_istiod_and_ztunnel():
    cluster = dict(CLUSTER, deployments=[], daemonsets=[])
    result = run([pod("ambient")], cluster=cluster, requested_namespaces=["mesh-ambient"])
    assert codes(result) == ["OKM0001", "OKM0007"]


def test_expected_revision_flags_other_namespaces():
    result = run([], requested_namespaces=["bookinfo", "tagged", "canary"], revision="1-28")
    f = [x for x in result["findings"] if x["code"] == "OKM0012"]
    assert [x["namespace"] for x in f] == ["bookinfo"]


def test_ambient_and_sidecar_namespace_warning():
    cluster = copy.deepcopy(CLUSTER)
    cluster["namespaces"].append({"metadata": {"name": "mixed", "labels": {"istio-injection": "enabled", "istio.io/dataplane-mode": "ambient"}}})
    result = run([], cluster=cluster, requested_namespaces=["mixed"])
    assert codes(result) == ["OKM0013"]


def test_result_is_json_serialisable_and_issue_lists_are_dropped():
    result = run(all_pods())
    json.dumps(result)
    assert all("issues" not in p for p in result["pods"])


# ---------------------------------------------------------------------------------------
# report lines
# ---------------------------------------------------------------------------------------
def test_report_lines_linkerd_style():
    result = run(all_pods())
    lines = inj.report_lines(result, "error")
    assert lines[0] == "control plane (istio-system)"
    assert "√ istiod is ready (istio-system, 1/1, version 1.28.0)" in lines
    assert "√ injector webhook istio-sidecar-injector has a CA bundle" in lines
    assert "√ injector service istio-system/istiod has ready endpoints (1)" in lines
    assert "√ bookinfo: sidecar injection, revision default (istio-injection=enabled)" in lines
    assert "× deployment/reviews-v2: 1 pod without istio-proxy, restart needed [IST0103]" in lines
    i = lines.index("× deployment/reviews-v2: 1 pod without istio-proxy, restart needed [IST0103]")
    assert lines[i + 1] == "    remedy: kubectl rollout restart deployment/reviews-v2 -n bookinfo"
    assert any(line.startswith("‼ both-labels: both istio-injection=enabled and istio.io/rev=1-28") for line in lines)
    assert "√ 2 pods carry a ready istio-proxy (classic 1, native 1)" in lines
    assert any(line.startswith("√ 3 pods out of the mesh on purpose (") for line in lines)
    assert lines[-1].startswith("Status check results are × (3 errors, 4 warnings; 14 pods in 6 namespaces:")
    assert lines[-1].endswith(" - failed (fail_on=error)")
    for line in lines:
        assert line == "" or line[0] in "√‼×-" or line.startswith(("    remedy:", "control plane", "namespaces", "pods in", "Status"))


def test_report_summary_line_when_all_good():
    result = run([pod("classic")], requested_namespaces=["bookinfo"])
    lines = inj.report_lines(result, "warning")
    assert lines[-1] == "Status check results are √ (0 errors, 0 warnings; 1 pods in 1 namespaces: injected 1)"
    assert not any(line.startswith(("×", "‼")) for line in lines)


def test_istiod_pod_labelled_with_its_revision_is_not_a_workload():
    istiod = {
        "metadata": {"name": "istiod-5f4d-abcde", "namespace": "istio-system",
                     "labels": {"app": "istiod", "istio.io/rev": "default"}},
        "spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.28.0"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "discovery", "ready": True}]},
    }
    result = run([istiod, pod("classic")])
    assert "istio-system" not in [n["name"] for n in result["namespaces"]]
    result = run([istiod], requested_namespaces=["istio-system"])
    assert result["pods"][0]["status"] == "excluded" and "control plane" in result["pods"][0]["reason"]


def test_not_ready_pods_are_not_converged_even_when_they_do_not_fail():
    result = run([pod("app-not-ready")], requested_namespaces=["bookinfo"])
    assert inj.verdict(result, "error") is False
    assert inj.converged(result, "error") is False and inj.converged(result, "never") is False


def test_resource_plan_lists_pods_once_per_namespace_or_cluster_wide():
    plan = inj.resource_plan(None, "app=x", "istio-system")
    pods = [p for p in plan if p["key"] == "pods"]
    assert pods == [{"key": "pods", "path": "/api/v1/pods", "label_selector": "app=x"}]
    plan = inj.resource_plan(["a", "b", "a"], None, "mesh")
    assert [p["path"] for p in plan if p["key"] == "pods"] == ["/api/v1/namespaces/a/pods", "/api/v1/namespaces/b/pods"]
    assert {p["key"] for p in plan} == {"namespaces", "pods", "webhooks", "deployments", "daemonsets", "services", "endpointslices"}
    assert all("/namespaces/mesh/" in p["path"] for p in plan if p["key"] in ("deployments", "daemonsets", "services"))
