"""kubesim's API write semantics measured as a real API server behaves, through real clients
(kubectl and raw REST): typed decoding drops nulls, no-op writes, generation rules, defaulting,
validation, ServiceAccount admission, managedFields and server-side apply conflicts."""

from __future__ import annotations

import json
import time

import pytest

from kubesim.testing import apply, get_json, kubectl, wait_for

PROM = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus, namespace: default}
spec:
  selector: {matchLabels: {app: prometheus}}
  strategy: {type: Recreate, rollingUpdate: null}
  template:
    metadata: {labels: {app: prometheus}}
    spec:
      containers: [{name: prometheus, image: prom/prometheus:v3.1.0, args: null}]
"""


def _rest(ks, method, path, body=None, ctype="application/json"):
    status, out = ks.request(method, path, body, content_type=ctype)
    return status, out


@pytest.mark.kubesim(behaviour=False)
def test_explicit_nulls_are_dropped_and_reapply_is_a_noop(kubesim):
    kubectl(kubesim, "apply", "-f", "-", input=PROM)
    first = get_json(kubesim, "deployment", "prometheus")
    assert first["spec"]["strategy"] == {"type": "Recreate"}            # null dropped, no rollingUpdate defaulted
    assert "args" not in first["spec"]["template"]["spec"]["containers"][0]
    assert first["metadata"]["generation"] == 1
    out = kubectl(kubesim, "apply", "-f", "-", input=PROM)
    assert "unchanged" in out.stdout or "configured" in out.stdout
    second = get_json(kubesim, "deployment", "prometheus")
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert second["metadata"]["generation"] == 1
    # a strategic merge patch that only says null changes nothing either
    status, _body = _rest(kubesim, "PATCH", "/apis/apps/v1/namespaces/default/deployments/prometheus",
                          {"spec": {"strategy": {"rollingUpdate": None}}}, "application/strategic-merge-patch+json")
    assert status == 200
    third = get_json(kubesim, "deployment", "prometheus")
    assert third["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


@pytest.mark.kubesim(behaviour=False)
def test_merge_patch_null_still_deletes_and_custom_resources_keep_nulls(kubesim):
    kubectl(kubesim, "create", "configmap", "c", "--from-literal=a=1")
    kubectl(kubesim, "label", "configmap", "c", "tier=web")
    status, cm = _rest(kubesim, "PATCH", "/api/v1/namespaces/default/configmaps/c",
                       {"metadata": {"labels": {"tier": None}}, "data": {"a": None, "b": "2"}}, "application/merge-patch+json")
    assert status == 200
    assert "tier" not in (cm["metadata"].get("labels") or {})
    assert cm["data"] == {"b": "2"}

    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    assert _rest(kubesim, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)[0] == 201

    def create_widget():
        answer = _rest(kubesim, "POST", "/apis/example.com/v1/namespaces/default/widgets",
                       {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": None}})
        return answer if answer[0] == 201 else None

    status, w = wait_for(create_widget, what="the Widget kind served")
    assert w["spec"] == {"size": None}                 # unstructured: the null is kept
    assert w["metadata"]["generation"] == 1


@pytest.mark.kubesim(behaviour=False)
def test_generation_moves_only_on_spec_changes_and_only_for_kinds_that_have_it(kubesim):
    kubectl(kubesim, "apply", "-f", "-", input=PROM)
    kubectl(kubesim, "label", "deployment", "prometheus", "team=obs")
    d = get_json(kubesim, "deployment", "prometheus")
    assert d["metadata"]["generation"] == 1                        # metadata only
    kubectl(kubesim, "set", "image", "deployment/prometheus", "prometheus=prom/prometheus:v3.2.0")
    assert get_json(kubesim, "deployment", "prometheus")["metadata"]["generation"] == 2
    kubectl(kubesim, "create", "configmap", "c", "--from-literal=a=1")
    kubectl(kubesim, "patch", "configmap", "c", "-p", '{"data":{"a":"2"}}')
    cm = get_json(kubesim, "configmap", "c")
    assert "generation" not in cm["metadata"]                      # ConfigMap carries no generation
    assert cm["data"] == {"a": "2"}


@pytest.mark.kubesim(behaviour=False)
def test_defaulting_of_rolling_update_strategies(kubesim):
    kubectl(kubesim, "apply", "-f", "-", input=PROM.replace("type: Recreate, rollingUpdate: null", "type: RollingUpdate"))
    d = get_json(kubesim, "deployment", "prometheus")
    assert d["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    bad = PROM.replace("rollingUpdate: null", "rollingUpdate: {maxSurge: 1}").replace("name: prometheus,", "name: p2,")
    out = kubectl(kubesim, "apply", "-f", "-", input=bad, check=False)
    assert out.returncode != 0
    assert "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'" in out.stderr


@pytest.mark.kubesim(behaviour=False)
def test_validation_of_services_jobs_and_immutable_secrets(kubesim):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "two"},
           "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}, {"port": 443}]}}
    status, err = _rest(kubesim, "POST", "/api/v1/namespaces/default/services", svc)
    assert status == 422
    assert err["message"] == 'Service "two" is invalid: spec.ports[0].name: Required value; spec.ports[1].name: Required value'
    svc["spec"]["ports"] = [{"name": "http", "port": 80}]
    status, created = _rest(kubesim, "POST", "/api/v1/namespaces/default/services", svc)
    assert status == 201
    assert "generation" not in created["metadata"]
    status, err = _rest(kubesim, "PATCH", "/api/v1/namespaces/default/services/two",
                        {"spec": {"clusterIP": "10.96.200.200"}}, "application/merge-patch+json")
    assert status == 422 and "may not change once set" in err["message"]

    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "immutable": True, "stringData": {"k": "v"}}
    assert _rest(kubesim, "POST", "/api/v1/namespaces/default/secrets", secret)[0] == 201
    status, err = _rest(kubesim, "PATCH", "/api/v1/namespaces/default/secrets/s", {"stringData": {"k": "w"}},
                        "application/merge-patch+json")
    assert status == 422
    assert "data: Forbidden: field is immutable when `immutable` is set" in err["message"]

    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}
    assert _rest(kubesim, "POST", "/apis/batch/v1/namespaces/default/jobs", job)[0] == 201
    status, err = _rest(kubesim, "PATCH", "/apis/batch/v1/namespaces/default/jobs/j",
                        {"spec": {"selector": {"matchLabels": {"x": "y"}}}}, "application/merge-patch+json")
    assert status == 422 and "spec.selector: Invalid value: field is immutable" in err["message"]


@pytest.mark.kubesim(behaviour=False)
def test_service_account_admission_refuses_pods_naming_a_missing_account(kubesim):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "busybox"}]}}
    status, err = _rest(kubesim, "POST", "/api/v1/namespaces/default/pods", pod)
    assert status == 403
    assert err["reason"] == "Forbidden"
    assert err["message"] == 'pods "p" is forbidden: error looking up service account default/robot: serviceaccount "robot" not found'
    kubectl(kubesim, "create", "serviceaccount", "robot")
    assert _rest(kubesim, "POST", "/api/v1/namespaces/default/pods", pod)[0] == 201


@pytest.mark.kubesim(pod_ready_delay=0)
def test_replicaset_reports_failed_creates_until_the_account_exists(kubesim):
    kubectl(kubesim, "apply", "-f", "-", input=PROM.replace("containers:", "serviceAccountName: robot\n      containers:"))

    def failure():
        rs = get_json(kubesim, "replicasets")["items"]
        conds = [c for r in rs for c in (r.get("status") or {}).get("conditions") or [] if c["type"] == "ReplicaFailure"]
        return (rs[0], conds[0]) if conds else None

    rs, cond = wait_for(failure, what="ReplicaFailure on the ReplicaSet")
    prefix = rs["metadata"]["name"] + "-"
    msg = f'pods "{prefix}" is forbidden: error looking up service account default/robot: serviceaccount "robot" not found'
    assert (cond["status"], cond["reason"], cond["message"]) == ("True", "FailedCreate", msg)
    events = get_json(kubesim, "events")["items"]
    ev = [e for e in events if e["reason"] == "FailedCreate"]
    assert ev and ev[0]["message"] == f"Error creating: {msg}" and ev[0]["type"] == "Warning"
    assert ev[0]["involvedObject"]["kind"] == "ReplicaSet"
    assert get_json(kubesim, "pods")["items"] == []
    kubectl(kubesim, "create", "serviceaccount", "robot")
    wait_for(lambda: len(get_json(kubesim, "pods")["items"]) == 1, what="the pod once the account exists")
    wait_for(lambda: not failure(), what="ReplicaFailure cleared")


@pytest.mark.kubesim(behaviour=False)
def test_managed_fields_record_manager_operation_and_fields(kubesim):
    kubectl(kubesim, "create", "configmap", "c", "--from-literal=a=1")
    cm = get_json(kubesim, "configmap", "c", "--show-managed-fields")
    (mf,) = cm["metadata"]["managedFields"]
    assert (mf["manager"], mf["operation"], mf["apiVersion"], mf["fieldsType"]) == ("kubectl-create", "Update", "v1", "FieldsV1")
    assert mf["fieldsV1"] == {"f:data": {".": {}, "f:a": {}}}
    assert mf["time"].endswith("Z")
    # a write by another manager takes the fields it changes; no manager parameter: the User-Agent's product
    status, out = kubesim.request("PATCH", "/api/v1/namespaces/default/configmaps/c", {"data": {"a": "2", "b": "3"}},
                                  content_type="application/merge-patch+json", headers={"User-Agent": "Helm/3.18.0"})
    assert status == 200
    by = {m["manager"]: m for m in out["metadata"]["managedFields"]}
    assert set(by) == {"Helm"}
    assert by["Helm"]["fieldsV1"] == {"f:data": {".": {}, "f:a": {}, "f:b": {}}}
    # a no-op write keeps managedFields and resourceVersion
    status, again = kubesim.request("PATCH", "/api/v1/namespaces/default/configmaps/c", {"data": {"a": "2"}},
                                    content_type="application/merge-patch+json")
    assert again["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]
    assert again["metadata"]["managedFields"] == out["metadata"]["managedFields"]


@pytest.mark.kubesim(behaviour=False)
def test_server_side_apply_conflicts_between_managers_and_force(kubesim):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": "default"}, "data": {"a": "1", "b": "2"}}
    path = "/api/v1/namespaces/default/configmaps/ssa?fieldManager=alice"
    status, out = kubesim.request("PATCH", path, json.dumps(cm).encode(), content_type="application/apply-patch+yaml")
    assert status == 201
    assert [(m["manager"], m["operation"]) for m in out["metadata"]["managedFields"]] == [("alice", "Apply")]
    cm["data"] = {"a": "9"}
    bob = "/api/v1/namespaces/default/configmaps/ssa?fieldManager=bob"
    status, err = kubesim.request("PATCH", bob, json.dumps(cm).encode(), content_type="application/apply-patch+yaml")
    assert status == 409
    assert err["reason"] == "Conflict"
    assert err["message"] == 'Apply failed with 1 conflict: conflict with "alice": .data.a'
    assert err["details"]["causes"] == [{"reason": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".data.a"}]
    # the same value is shared, not a conflict
    cm["data"] = {"b": "2"}
    assert kubesim.request("PATCH", bob, json.dumps(cm).encode(), content_type="application/apply-patch+yaml")[0] == 200
    cm["data"] = {"a": "9", "b": "2"}
    status, out = kubesim.request("PATCH", bob + "&force=true", json.dumps(cm).encode(), content_type="application/apply-patch+yaml")
    assert status == 200
    assert out["data"] == {"a": "9", "b": "2"}
    fields = {m["manager"]: m["fieldsV1"]["f:data"] for m in out["metadata"]["managedFields"]}
    assert "f:a" not in fields["alice"] and "f:b" in fields["alice"]
    assert {"f:a", "f:b"} <= set(fields["bob"])
    # kubectl's own server-side apply meets an Update manager's field
    kubectl(kubesim, "create", "configmap", "x", "--from-literal=k=v")
    out = kubectl(kubesim, "apply", "--server-side", "-f", "-", check=False,
                  input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\ndata: {k: other}\n")
    assert out.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl-create" using v1: .data.k' in out.stderr


@pytest.mark.kubesim(pod_ready_delay=0)
def test_job_pod_runs_for_its_sleep_then_succeeds(kubesim):
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "sleeper", "namespace": "default"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3"]}]}}}}
    apply(kubesim, [job])
    start = time.monotonic()
    pod = wait_for(lambda: next((p for p in get_json(kubesim, "pods", "-l", "job-name=sleeper")["items"]
                                 if p["status"].get("phase") == "Running"), None), what="the job's pod Running")
    assert pod["status"]["containerStatuses"][0]["state"]["running"]
    assert get_json(kubesim, "job", "sleeper")["status"].get("succeeded") is None
    wait_for(lambda: get_json(kubesim, "job", "sleeper")["status"].get("succeeded") == 1, timeout=30, what="the job complete")
    assert time.monotonic() - start >= 2.0                       # it ran for (about) its sleep
    kubesim.settings(container_run_time_max=0.5)
    apply(kubesim, [{**job, "metadata": {"name": "capped", "namespace": "default"}}])
    wait_for(lambda: get_json(kubesim, "job", "capped")["status"].get("succeeded") == 1, timeout=10, what="the capped job complete")
