"""Each stage of the injection check on its own (plugins/module_utils/_injection_stages.py).

Every stage takes plain data and returns plain data (dataclasses of dicts and lists), so each
is called here directly with the fixture cluster (tests/fixtures/pods/) and its output asserted.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import yaml

from ansible_collections.okemesh.istio.plugins.module_utils import _injection_stages as st

FIXTURES = Path(__file__).resolve().parents[4] / "fixtures" / "pods"
CLUSTER = yaml.safe_load((FIXTURES / "cluster.yaml").read_text())


def pod(name: str) -> dict:
    return yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())


def cluster(pods=(), **overrides) -> st.Cluster:
    c = copy.deepcopy(CLUSTER)
    c.update(overrides)
    return st.Cluster(namespaces=c["namespaces"], pods=list(pods), webhook_configurations=c["webhooks"],
                      deployments=c["deployments"], services=c["services"], endpoint_slices=c["endpoint_slices"],
                      daemonsets=c["daemonsets"])


def issues(items) -> list[tuple]:
    return [(i.code, i.object, i.namespace, i.variant) for i in items]


def test_index_control_plane():
    index = st.index_control_plane(cluster(), "istio-system")
    assert sorted(index.injectors) == ["1-28", "default", "prod-stable"]
    assert index.injectors["prod-stable"]["revision"] == "1-28"
    assert sorted(index.istiod) == ["1-28", "default"]
    assert ("istio-system", "istiod") in index.services
    assert index.endpoint_counts[("istio-system", "istiod")] == 1
    # istiod Deployments outside the istio namespace are not the control plane
    assert st.index_control_plane(cluster(), "elsewhere").istiod == {}


def test_scope_default_is_the_namespaces_that_ask():
    c = cluster([pod("gateway"), pod("bare-plain")])
    scope = st.select_scope(c, st.CheckOptions(), st.index_control_plane(c, "istio-system"))
    # istio-ingress: unlabelled, but holds a gateway pod that asks; plain's pod does not ask
    assert scope.names == ["bookinfo", "both-labels", "canary", "istio-ingress", "mesh-ambient", "tagged"]
    assert scope.explicit is False and scope.infos["tagged"]["revision"] == "prod-stable"
    assert issues(scope.issues) == [("IST0123", "namespace/both-labels", "both-labels", "")]
    assert scope.issues[0].facts["conflict"].startswith("both istio-injection=enabled and istio.io/rev=1-28")


def test_scope_named_namespaces_keep_their_order_and_report_problems_as_issues():
    c = cluster()
    options = st.CheckOptions(namespaces=["plain", "nope", "bookinfo", "plain"], revision="1-28")
    scope = st.select_scope(c, options, st.index_control_plane(c, "istio-system"))
    assert scope.names == ["plain", "nope", "bookinfo"] and scope.explicit is True
    assert sorted(scope.infos) == ["bookinfo", "plain"]
    assert issues(scope.issues) == [
        ("IST0102", "namespace/plain", "plain", ""),
        ("OKM0011", "namespace/nope", "nope", ""),
        ("OKM0012", "namespace/bookinfo", "bookinfo", ""),
    ]
    assert scope.issues[2].facts == {"namespace": "bookinfo", "asked": "default", "expected": "1-28"}


def test_scope_revision_tag_resolves_to_its_revision():
    c = cluster()
    scope = st.select_scope(c, st.CheckOptions(namespaces=["tagged", "canary"], revision="1-28"), st.index_control_plane(c, "istio-system"))
    assert scope.issues == []  # prod-stable is a tag of 1-28


def test_scope_when_nothing_asks():
    c = cluster(namespaces=[{"metadata": {"name": "default"}}])
    scope = st.select_scope(c, st.CheckOptions(), st.index_control_plane(c, "istio-system"))
    assert scope.names == [] and issues(scope.issues) == [("OKM0010", "cluster", None, "")]


def test_classify_pods_collects_what_the_control_plane_must_serve():
    c = cluster([pod("classic"), pod("tagged"), pod("ambient"), pod("bare-plain")])
    index = st.index_control_plane(c, "istio-system")
    scope = st.select_scope(c, st.CheckOptions(), index)
    verdicts = st.classify_pods(scope, index, st.CheckOptions(revision="canary-x"))
    assert [(r["namespace"], r["status"]) for r in verdicts.results] == [
        ("bookinfo", "injected"), ("mesh-ambient", "ambient"), ("tagged", "injected")]
    assert verdicts.keys_needed == {"default", "1-28", "prod-stable", "canary-x"}
    assert verdicts.ambient_needed is True
    assert all(r["issues"] == [] for r in verdicts.results)


def test_classify_pods_issue_carries_code_variant_and_facts():
    c = cluster([pod("stale"), pod("old-revision"), pod("version-skew")])
    index = st.index_control_plane(c, "istio-system")
    options = st.CheckOptions(namespaces=["bookinfo", "tagged"])
    verdicts = st.classify_pods(st.select_scope(c, options, index), index, options)
    by_code = {r["issues"][0].code: r["issues"][0] for r in verdicts.results}
    assert by_code["IST0103"].variant == "restart" and by_code["IST0103"].facts == {}
    assert by_code["OKM0022"].facts == {"injected": "default", "asked": "prod-stable"}
    assert by_code["IST0158"].facts == {"proxy_version": "1.27.3", "control_version": "1.28.0"}


def control_plane(c: st.Cluster, options: st.CheckOptions) -> st.ControlPlane:
    index = st.index_control_plane(c, options.istio_namespace)
    scope = st.select_scope(c, options, index)
    return st.check_control_plane(c, index, st.classify_pods(scope, index, options), options)


def test_control_plane_healthy():
    cp = control_plane(cluster(), st.CheckOptions(namespaces=["bookinfo", "tagged", "mesh-ambient"]))
    assert cp.issues == []
    assert [i["key"] for i in cp.view["injectors"]] == ["default", "prod-stable"]
    assert cp.view["injectors"][0]["service_endpoints"] == {"istio-system/istiod": 1}
    assert "_services" not in cp.view["injectors"][0]
    assert cp.view["ztunnel"] == {"name": "ztunnel", "desired": 3, "ready": 3, "ok": True}


def test_control_plane_issues_and_variants():
    c = cluster(webhooks=[], deployments=CLUSTER["deployments"][1:], daemonsets=[])
    cp = control_plane(c, st.CheckOptions(namespaces=["bookinfo", "canary", "mesh-ambient"]))
    assert issues(cp.issues) == [
        ("OKM0003", "mutatingwebhookconfiguration/istio-sidecar-injector-1-28", None, "revision"),
        ("OKM0003", "mutatingwebhookconfiguration/istio-sidecar-injector", None, ""),
        ("OKM0001", "deployment/istiod", "istio-system", "revision"),
        ("OKM0007", "daemonset/ztunnel", "istio-system", ""),
    ]
    assert cp.issues[0].facts == {"key": "1-28", "wanted": "istio.io/rev=1-28"}


def test_control_plane_ztunnel_not_ready_and_istiod_not_ready():
    ds = copy.deepcopy(CLUSTER["daemonsets"])
    ds[0]["status"]["numberReady"] = 1
    deps = copy.deepcopy(CLUSTER["deployments"])
    deps[0]["status"]["readyReplicas"] = 0
    cp = control_plane(cluster(daemonsets=ds, deployments=deps), st.CheckOptions(namespaces=["mesh-ambient", "bookinfo"]))
    assert issues(cp.issues) == [("OKM0002", "deployment/istiod", "istio-system", ""),
                                 ("OKM0007", "daemonset/ztunnel", "istio-system", "not_ready")]
    assert cp.issues[1].facts == {"istio_namespace": "istio-system", "ready": 1, "desired": 3}


def test_pod_issues_aggregate_per_workload_and_version_skew_per_namespace():
    results = []
    for i, kind in enumerate(["stale", "stale", "version-skew", "version-skew"]):
        p = pod(kind)
        p["metadata"]["name"] += str(i)
        results.append(p)
    c = cluster(results)
    options = st.CheckOptions(namespaces=["bookinfo"])
    index = st.index_control_plane(c, "istio-system")
    verdicts = st.classify_pods(st.select_scope(c, options, index), index, options)
    aggregated = st.pod_issues(verdicts.results)
    assert [(i.code, i.object, len(i.pods)) for i in aggregated] == [
        ("IST0103", "deployment/reviews-v2", 2), ("IST0158", "namespace/bookinfo", 2)]
    assert aggregated[0].facts["what"] == "2 pods"
    assert aggregated[0].facts["restart"] == "kubectl rollout restart deployment/reviews-v2 -n bookinfo"
    assert aggregated[1].facts["count"] == 2 and aggregated[1].facts["run"] == "s run"


def test_build_findings_orders_namespaces_control_plane_pods_and_renders_from_the_table():
    scope = st.Scope(names=[], infos={}, explicit=False, pods_by_ns={}, issues=[st.Issue("OKM0010", "cluster")])
    cp = st.ControlPlane(view={}, issues=[st.Issue("OKM0001", "deployment/istiod", "mesh", facts={"istio_namespace": "mesh"})])
    findings = st.build_findings(scope, cp, st.PodVerdicts(results=[], keys_needed=set(), ambient_needed=False))
    assert findings == [
        {"code": "OKM0010", "name": "NoNamespaceAsksForInjection", "severity": "warning", "object": "cluster", "namespace": None,
         "message": "no namespace asks for injection",
         "remedy": "kubectl label namespace <ns> istio-injection=enabled (or istio.io/rev=<rev>)"},
        {"code": "OKM0001", "name": "IstiodMissing", "severity": "error", "object": "deployment/istiod", "namespace": "mesh",
         "message": "no istiod Deployment in mesh", "remedy": "install the istiod chart (helm install istiod istio/istiod -n mesh)"},
    ]


def test_summarize_counts():
    scope = st.Scope(names=["a", "gone"], infos={"a": {"mode": "sidecar", "revision": "default"}}, explicit=True,
                     pods_by_ns={}, issues=[])
    pods = [{"namespace": "a", "status": "injected"}, {"namespace": "a", "status": "not_ready"}]
    findings = [{"severity": "error"}, {"severity": "warning"}, {"severity": "warning"}]
    assert st.summarize(scope, pods, findings) == {
        "namespaces": 1, "pods": 2, "by_status": {"injected": 1, "not_ready": 1},
        "by_namespace": {"a": {"mode": "sidecar", "revision": "default", "pods": 2, "by_status": {"injected": 1, "not_ready": 1}}},
        "errors": 1, "warnings": 2,
    }


def test_stage_outputs_are_plain_data():
    c = cluster([pod("classic"), pod("stale")])
    options = st.CheckOptions()
    index = st.index_control_plane(c, "istio-system")
    scope = st.select_scope(c, options, index)
    verdicts = st.classify_pods(scope, index, options)
    cp = st.check_control_plane(c, index, verdicts, options)
    for out in (scope, cp):
        json.dumps(dataclasses.asdict(out))
    json.dumps(st.build_findings(scope, cp, verdicts))
