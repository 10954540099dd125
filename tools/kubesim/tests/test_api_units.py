"""Pure pieces of kubesim's API half: strategic merge, JSON patch, selectors, protobuf wire format, tables."""

from __future__ import annotations

import base64

import pytest

from kubesim.api import protobuf, tables
from kubesim.api.errors import ApiError
from kubesim.api.patch import apply_merge, json_merge, json_patch, strategic_merge
from kubesim.api.selectors import match_labels, parse_field_selector, parse_label_selector

POD = {"spec": {"containers": [{"name": "app", "image": "a:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]},
                               {"name": "side", "image": "s:1"}],
                "volumes": [{"name": "v1", "emptyDir": {}}]},
       "metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}}}


def test_strategic_merge_directives():
    out = strategic_merge(POD, {"spec": {"containers": [{"name": "side", "$patch": "delete"}, {"name": "app", "image": "a:2"}],
                                         "$setElementOrder/volumes": [{"name": "v2"}, {"name": "v1"}],
                                         "volumes": [{"name": "v2", "configMap": {"name": "c"}}]},
                                "metadata": {"finalizers": ["b", "a"], "labels": {"y": None}}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["app"]
    assert out["spec"]["containers"][0]["image"] == "a:2" and out["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    assert [v["name"] for v in out["spec"]["volumes"]] == ["v2", "v1"]
    assert out["metadata"] == {"finalizers": ["a", "b"], "labels": {"x": "1"}}
    assert POD["spec"]["containers"][1]["name"] == "side"          # input untouched
    out = strategic_merge(POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
                                "spec": {"$retainKeys": ["containers"], "containers": [{"name": "app", "ports": [{"containerPort": 81}]}]}})
    assert out["metadata"]["finalizers"] == [] and "volumes" not in out["spec"]
    assert [p["containerPort"] for p in out["spec"]["containers"][0]["ports"]] == [80, 81]
    replaced = strategic_merge(POD, {"spec": {"$patch": "replace", "containers": []}})
    assert replaced["spec"] == {"containers": []}


def test_json_merge_and_json_patch():
    assert json_merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None}, "l": [2]}) == {"a": {"c": 2}, "l": [2]}
    doc = {"a": [1, 2], "b": {"c": "d"}}
    assert json_patch(doc, [{"op": "add", "path": "/a/-", "value": 3}, {"op": "move", "from": "/b/c", "path": "/e"},
                            {"op": "copy", "from": "/e", "path": "/f"}, {"op": "remove", "path": "/a/0"}]) == {"a": [2, 3], "b": {}, "e": "d", "f": "d"}
    with pytest.raises(ApiError) as exc:
        json_patch(doc, [{"op": "replace", "path": "/nope/x", "value": 1}])
    assert exc.value.code == 422


def test_apply_prunes_only_what_the_manager_dropped():
    live = {"data": {"a": "1", "b": "2", "other": "x"}}
    out = apply_merge(live, {"data": {"b": "3"}}, previous={"data": {"a": "1", "b": "2"}})
    assert out == {"data": {"b": "3", "other": "x"}}


def test_label_and_field_selectors():
    m = parse_label_selector("app in (a, b),tier!=db,!legacy,env")
    assert m({"app": "a", "tier": "web", "env": "x"}) and not m({"app": "c", "env": "x"}) and not m({"app": "a", "env": "x", "legacy": "1"})
    assert parse_label_selector("") is None
    with pytest.raises(ApiError):
        parse_label_selector("a b c")
    f = parse_field_selector("status.phase!=Running,spec.nodeName=n1")
    assert f({"status": {"phase": "Pending"}, "spec": {"nodeName": "n1"}}) and not f({"status": {"phase": "Running"}, "spec": {"nodeName": "n1"}})
    assert match_labels({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}, {"a": "y"})


def test_protobuf_roundtrip_and_rejects():
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "s", "namespace": "n", "labels": {"a": "b"}, "annotations": {"c": "d"}, "finalizers": ["f"],
                           "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u", "controller": True}]},
              "data": {"k": base64.b64encode(bytes(range(256))).decode()}, "stringData": {"s": "t"}}
    assert protobuf.decode(protobuf.encode(secret)) == secret
    with pytest.raises(protobuf.Unsupported):
        protobuf.decode(b'{"kind": "Secret"}')
    with pytest.raises(protobuf.Unsupported):
        protobuf.decode(b"k8s\x00\x0a\x0d\x0a\x02v1\x12\x07Service")


def test_pod_ready_and_status_like_kubectl():
    pod = {"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "init"}, {"name": "proxy", "restartPolicy": "Always"}],
                                               "containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Pending", "initContainerStatuses": [
               {"name": "init", "state": {"running": {}}, "restartCount": 0}, {"name": "proxy", "state": {"waiting": {}}}]}}
    cells = tables.pod_row(pod)[0]
    assert cells[1:4] == ["0/3", "Init:0/2", 0]
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert tables.pod_row(pod)[0][2] == "Terminating"
    assert [tables.human_duration(s) for s in (5, 150, 3600 * 5 + 60, 3600 * 30, 86400 * 3 + 3600)] == ["5s", "2m30s", "5h1m", "30h", "3d1h"]
