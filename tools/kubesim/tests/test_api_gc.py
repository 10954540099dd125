"""Deletion semantics: owner-reference garbage collection (Background/Foreground/Orphan), finalizers."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.kubesim(behaviour=False)


def _mk(ks, path: str, obj: dict) -> dict:
    s, body = ks.request("POST", path, obj)
    assert s == 201, body
    return body


def _owned_tree(ks, name: str) -> tuple[dict, dict, list[dict]]:
    dep = _mk(ks, "/apis/apps/v1/namespaces/default/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
                                                                          "spec": {"containers": [{"name": "c", "image": "i"}]}}}})

    def ref(o, kind, av):
        return [{"apiVersion": av, "kind": kind, "name": o["metadata"]["name"], "uid": o["metadata"]["uid"],
                 "controller": True, "blockOwnerDeletion": True}]

    rs = _mk(ks, "/apis/apps/v1/namespaces/default/replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": f"{name}-abc", "ownerReferences": ref(dep, "Deployment", "apps/v1")},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
                                                                          "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    pods = [_mk(ks, "/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-abc-{i}", "labels": {"app": name},
                                                        "ownerReferences": ref(rs, "ReplicaSet", "apps/v1")},
        "spec": {"containers": [{"name": "c", "image": "i"}]}}) for i in range(2)]
    return dep, rs, pods


def _names(ks, path: str) -> list[str]:
    s, body = ks.request("GET", path)
    return [i["metadata"]["name"] for i in body["items"]]


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
def test_deleting_a_deployment_cascades(kubesim, policy):
    _owned_tree(kubesim, "web")
    s, _body = kubesim.request("DELETE", f"/apis/apps/v1/namespaces/default/deployments/web?propagationPolicy={policy}")
    assert s == 200
    assert _names(kubesim, "/apis/apps/v1/namespaces/default/replicasets") == []
    assert _names(kubesim, "/api/v1/namespaces/default/pods") == []


def test_orphan_keeps_dependents_and_strips_owner_refs(kubesim):
    _owned_tree(kubesim, "api")
    s, _body = kubesim.request("DELETE", "/apis/apps/v1/namespaces/default/deployments/api", {"propagationPolicy": "Orphan"})
    assert s == 200
    s, rs = kubesim.request("GET", "/apis/apps/v1/namespaces/default/replicasets/api-abc")
    assert s == 200 and "ownerReferences" not in rs["metadata"]
    assert _names(kubesim, "/api/v1/namespaces/default/pods") == ["api-abc-0", "api-abc-1"]


def test_finalizers_hold_deletion_until_removed(kubesim):
    _mk(kubesim, "/api/v1/namespaces/default/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    s, body = kubesim.request("DELETE", "/api/v1/namespaces/default/configmaps/held")
    assert s == 200 and body["metadata"]["deletionTimestamp"]
    s, body = kubesim.request("GET", "/api/v1/namespaces/default/configmaps/held")
    assert s == 200 and body["metadata"]["deletionTimestamp"]
    s, _body = kubesim.request("PATCH", "/api/v1/namespaces/default/configmaps/held", {"metadata": {"finalizers": None}},
                               content_type="application/merge-patch+json")
    assert s == 200
    s, _body = kubesim.request("GET", "/api/v1/namespaces/default/configmaps/held")
    assert s == 404


def test_namespace_goes_terminating_then_disappears(kubesim):
    import time

    _mk(kubesim, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}})
    _mk(kubesim, "/api/v1/namespaces/gone/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    s, body = kubesim.request("DELETE", "/api/v1/namespaces/gone")
    assert s == 200 and body["status"]["phase"] == "Terminating"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and kubesim.request("GET", "/api/v1/namespaces/gone")[0] != 404:
        time.sleep(0.05)
    assert kubesim.request("GET", "/api/v1/namespaces/gone")[0] == 404
    assert kubesim.request("GET", "/api/v1/namespaces/gone/configmaps/c")[0] == 404
