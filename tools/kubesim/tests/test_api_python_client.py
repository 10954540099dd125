"""kubesim driven by the kubernetes Python client (typed API and DynamicClient)."""

from __future__ import annotations

import base64
import threading

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from kubesim.api import protobuf

pytestmark = pytest.mark.kubesim(behaviour=False)


@pytest.fixture
def api(kubesim):
    return config.new_client_from_config(config_file=kubesim.kubeconfig, context="kubesim")


def cm(name: str, ns: str = "default", labels: dict | None = None, data: dict | None = None) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, namespace=ns, labels=labels), data=data or {"k": "v"})


def test_crud_resource_version_conflict_and_status_bodies(api):
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map("default", cm("one", data={"a": "1"}))
    assert created.metadata.uid and created.metadata.creation_timestamp
    rv1 = int(created.metadata.resource_version)
    created.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("one", "default", created)
    assert int(updated.metadata.resource_version) > rv1
    assert core.read_namespaced_config_map("one", "default").data == {"a": "2"}
    # stale resourceVersion -> 409 Conflict with a Status body
    created.data = {"a": "3"}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("one", "default", created)
    assert exc.value.status == 409
    assert '"reason":"Conflict"' in exc.value.body.replace(" ", "")
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", cm("one"))
    assert exc.value.status == 409 and '"AlreadyExists"' in exc.value.body
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("missing", "default")
    assert exc.value.status == 404 and 'configmaps \\"missing\\" not found' in exc.value.body
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", cm("Bad_Name"))
    assert exc.value.status == 422 and '"Invalid"' in exc.value.body
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nowhere", cm("x", ns="nowhere"))
    assert exc.value.status == 404 and 'namespaces \\"nowhere\\" not found' in exc.value.body
    core.delete_namespaced_config_map("one", "default")
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("one", "default")
    assert exc.value.status == 404


def test_generation_bumps_on_spec_change_only(api):
    apps = client.AppsV1Api(api)
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}
    d = apps.create_namespaced_deployment("default", dep)
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment("d", "default", {"metadata": {"labels": {"x": "y"}}})
    assert d.metadata.generation == 1 and d.metadata.labels == {"x": "y"}
    d = apps.patch_namespaced_deployment("d", "default", {"spec": {"replicas": 3}})
    assert d.metadata.generation == 2 and d.spec.replicas == 3
    # status subresource: the main resource ignores status, /status ignores the rest
    d = apps.patch_namespaced_deployment_status("d", "default", {"status": {"readyReplicas": 3, "replicas": 3}})
    assert d.status.ready_replicas == 3 and d.metadata.generation == 2
    rv = d.metadata.resource_version
    same = apps.patch_namespaced_deployment("d", "default", {"spec": {"replicas": 3}})
    assert same.metadata.resource_version == rv            # no-op writes do not bump resourceVersion


def test_label_field_selectors_and_paging(api):
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="sel")))
    for i in range(7):
        core.create_namespaced_config_map("sel", cm(f"c{i}", "sel", labels={"tier": "web" if i % 2 else "db", "idx": str(i)}))
    web = core.list_namespaced_config_map("sel", label_selector="tier=web")
    assert [c.metadata.name for c in web.items] == ["c1", "c3", "c5"]
    notin = core.list_namespaced_config_map("sel", label_selector="tier,idx notin (0,2)")
    assert [c.metadata.name for c in notin.items] == ["c1", "c3", "c4", "c5", "c6"]
    # every namespace also holds kube-root-ca.crt, as kube-controller-manager publishes it
    assert [c.metadata.name for c in core.list_namespaced_config_map("sel").items][-1] == "kube-root-ca.crt"
    byname = core.list_config_map_for_all_namespaces(field_selector="metadata.name=c4,metadata.namespace=sel")
    assert [c.metadata.name for c in byname.items] == ["c4"]
    page1 = core.list_namespaced_config_map("sel", limit=3)
    assert [c.metadata.name for c in page1.items] == ["c0", "c1", "c2"] and page1.metadata.remaining_item_count == 5
    page2 = core.list_namespaced_config_map("sel", limit=3, _continue=page1.metadata._continue)
    page3 = core.list_namespaced_config_map("sel", limit=3, _continue=page2.metadata._continue)
    assert [c.metadata.name for c in page2.items + page3.items] == ["c3", "c4", "c5", "c6", "kube-root-ca.crt"]
    assert page3.metadata._continue is None
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_config_map("sel", label_selector="tier in (web")
    assert exc.value.status == 400


def test_watch_added_modified_deleted_and_resume(api):
    core = client.CoreV1Api(api)
    start_rv = core.list_namespaced_config_map("default").metadata.resource_version
    events: list[tuple[str, str, str]] = []
    done = threading.Event()

    def consume():
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=start_rv, timeout_seconds=10):
            events.append((ev["type"], ev["object"].metadata.name, (ev["object"].data or {}).get("k", "")))
            if ev["type"] == "DELETED":
                w.stop()
        done.set()

    t = threading.Thread(target=consume)
    t.start()
    core.create_namespaced_config_map("default", cm("w1", data={"k": "1"}))
    core.patch_namespaced_config_map("w1", "default", {"data": {"k": "2"}})
    core.delete_namespaced_config_map("w1", "default")
    assert done.wait(15)
    t.join()
    assert events == [("ADDED", "w1", "1"), ("MODIFIED", "w1", "2"), ("DELETED", "w1", "2")]
    # a watch from the old resourceVersion replays the same history
    replay = [(e["type"], e["object"].metadata.name) for e in
              watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=start_rv, timeout_seconds=1)]
    assert replay == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_watch_bookmarks_and_label_selector_transitions(kubesim):
    import json
    import ssl
    import urllib.request

    status, lst = kubesim.request("GET", "/api/v1/namespaces/default/configmaps")
    rv = lst["metadata"]["resourceVersion"]
    kubesim.request("POST", "/api/v1/namespaces/default/configmaps",
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "labels": {"team": "a"}}})
    kubesim.request("PATCH", "/api/v1/namespaces/default/configmaps/b", {"metadata": {"labels": {"team": "b"}}},
                    content_type="application/merge-patch+json")
    url = (f"{kubesim.url}/api/v1/namespaces/default/configmaps?watch=1&labelSelector=team%3Da"
           f"&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=2")
    req = urllib.request.Request(url)  # noqa: S310
    req.add_header("Authorization", f"Bearer {kubesim.token}")
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=kubesim.ca), timeout=10) as resp:  # noqa: S310
        lines = [json.loads(x) for x in resp.read().splitlines() if x.strip()]
    types = [x["type"] for x in lines]
    # the object enters and then leaves the selector: ADDED then DELETED; then bookmarks
    assert types[:2] == ["ADDED", "DELETED"]
    assert "BOOKMARK" in types[2:]
    assert int(lines[-1]["object"]["metadata"]["resourceVersion"]) >= int(lines[1]["object"]["metadata"]["resourceVersion"])


def test_patch_types_and_server_side_apply(api, kubesim):
    apps = client.AppsV1Api(api)
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
               {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]}]}}}}
    apps.create_namespaced_deployment("default", dep)
    base = "/apis/apps/v1/namespaces/default/deployments/p"
    # strategic merge: a second container is added, the first one is kept (merge key: name)
    s, body = kubesim.request("PATCH", base, {"spec": {"template": {"spec": {"containers": [
        {"name": "istio-proxy", "image": "proxyv2:1.28"}, {"name": "app", "env": [{"name": "B", "value": "2"}]}]}}}},
        content_type="application/strategic-merge-patch+json")
    assert s == 200, body
    cs = body["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in cs] == ["app", "istio-proxy"]
    assert cs[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}] and cs[0]["image"] == "app:1"
    # JSON merge patch replaces lists wholesale
    s, body = kubesim.request("PATCH", base, {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}},
                              content_type="application/merge-patch+json")
    assert [c["name"] for c in body["spec"]["template"]["spec"]["containers"]] == ["only"]
    # JSON patch, including a failing test op (422)
    s, body = kubesim.request("PATCH", base, [{"op": "replace", "path": "/spec/replicas", "value": 4},
                                              {"op": "add", "path": "/metadata/labels", "value": {"z": "1"}}],
                              content_type="application/json-patch+json")
    assert s == 200 and body["spec"]["replicas"] == 4 and body["metadata"]["labels"] == {"z": "1"}
    s, body = kubesim.request("PATCH", base, [{"op": "test", "path": "/spec/replicas", "value": 9}], content_type="application/json-patch+json")
    assert s == 422 and body["kind"] == "Status"
    # server-side apply: create-or-merge with a field manager
    cfg = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: default\ndata:\n  a: '1'\n"
    s, body = kubesim.request("PATCH", "/api/v1/namespaces/default/configmaps/ssa?fieldManager=test", cfg.encode(),
                              content_type="application/apply-patch+yaml")
    assert s == 201 and body["data"] == {"a": "1"}
    s, body = kubesim.request("PATCH", "/api/v1/namespaces/default/configmaps/ssa?fieldManager=test&force=true",
                              cfg.replace("a: '1'", "b: '2'").encode(), content_type="application/apply-patch+yaml")
    assert s == 200 and body["data"] == {"b": "2"}     # field a was owned by this manager and is no longer applied
    s, body = kubesim.request("PATCH", "/api/v1/namespaces/default/configmaps/ssa", cfg.encode(), content_type="application/apply-patch+yaml")
    assert s == 422                                      # apply needs a field manager
    s, body = kubesim.request("PATCH", base, b"{}", content_type="text/plain")
    assert s == 415


def test_dry_run_stores_nothing(api):
    core = client.CoreV1Api(api)
    got = core.create_namespaced_config_map("default", cm("dry"), dry_run="All")
    assert got.metadata.name == "dry"
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("dry", "default")
    assert exc.value.status == 404
    core.create_namespaced_config_map("default", cm("real", data={"v": "1"}))
    core.patch_namespaced_config_map("real", "default", {"data": {"v": "2"}}, dry_run="All")
    core.delete_namespaced_config_map("real", "default", dry_run="All")
    assert core.read_namespaced_config_map("real", "default").data == {"v": "1"}


def test_protobuf_bodies_and_415(kubesim):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pb", "namespace": "default", "labels": {"owner": "helm"}},
              "type": "helm.sh/release.v1", "data": {"release": base64.b64encode(b"\x00\x01binary").decode()}}
    s, body = kubesim.request("POST", "/api/v1/namespaces/default/secrets", protobuf.encode(secret),
                              content_type="application/vnd.kubernetes.protobuf",
                              headers={"Accept": "application/vnd.kubernetes.protobuf, */*"})
    assert s == 201, body
    assert body["data"] == secret["data"] and body["type"] == "helm.sh/release.v1" and body["metadata"]["labels"] == {"owner": "helm"}
    s, body = kubesim.request("POST", "/api/v1/namespaces/default/configmaps",
                              protobuf.encode({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pbcm"}, "data": {"x": "y"}}),
                              content_type="application/vnd.kubernetes.protobuf")
    assert s == 201 and body["data"] == {"x": "y"} and body["metadata"]["namespace"] == "default"
    s, body = kubesim.request("POST", "/api/v1/namespaces/default/pods", b"k8s\x00\x0a\x0b\x0a\x02v1\x12\x03Pod\x12\x00",
                              content_type="application/vnd.kubernetes.protobuf")
    assert s == 415 and body["reason"] == "UnsupportedMediaType"


def test_dynamic_client_and_discovery(api):
    dyn = DynamicClient(api)
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    assert pods.namespaced and pods.name == "pods" and "po" in pods.short_names
    crb = dyn.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="ClusterRoleBinding")
    assert not crb.namespaced
    sa = dyn.resources.get(api_version="v1", kind="ServiceAccount")
    created = sa.create(body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}}, namespace="default")
    assert created.metadata.name == "robot"
    names = sorted(i.metadata.name for i in sa.get(namespace="default").items)
    assert names == ["default", "robot"]
    version = client.VersionApi(api).get_code()
    assert version.git_version == "v1.33.2" and version.major == "1"


def test_admin_settings_and_faults(kubesim, api):
    assert kubesim.settings()["fault_error_rate"] == 0.0
    assert kubesim.settings(fault_error_rate=1.0, fault_error_code=429, fault_retry_after=7, fault_paths="/configmaps")["fault_error_code"] == 429
    s, body = kubesim.request("GET", "/api/v1/namespaces/default/configmaps")
    assert s == 429 and body["reason"] == "TooManyRequests" and body["details"]["retryAfterSeconds"] == 7
    s, _body = kubesim.request("GET", "/api/v1/namespaces/default/secrets")
    assert s == 200                                      # other paths are not faulted
    s, _body = kubesim.request("GET", "/version")
    assert s == 200
    kubesim.settings(fault_error_rate=0.0)
    s, _body = kubesim.request("GET", "/api/v1/namespaces/default/configmaps")
    assert s == 200
    with pytest.raises(ValueError, match="unknown kubesim setting"):
        kubesim.settings(no_such_knob=1)
