"""kubesim driven by the real kubectl: apply/re-apply, label, get -o json, Table output, delete ns.

The API alone is under test here, so the cluster behaviour (controllers) is switched off."""

from __future__ import annotations

import time

import pytest

from kubesim.testing import kubectl, kubectl_json

pytestmark = pytest.mark.kubesim(behaviour=False)

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  mode: blue
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 8080}]
        env: [{name: MODE, value: blue}]
"""


def test_apply_then_reapply_reports_unchanged(kubesim):
    first = kubectl(kubesim, "apply", "-f", "-", input=MANIFEST)
    assert first.stdout.splitlines() == [
        "namespace/shop created",
        "configmap/settings created",
        "service/web created",
        "deployment.apps/web created",
    ]
    second = kubectl(kubesim, "apply", "-f", "-", input=MANIFEST)
    assert second.stdout.splitlines() == [
        "namespace/shop unchanged",
        "configmap/settings unchanged",
        "service/web unchanged",
        "deployment.apps/web unchanged",
    ]
    # a changed field is patched (strategic merge keeps the container list keyed by name)
    third = kubectl(kubesim, "apply", "-f", "-", input=MANIFEST.replace("value: blue", "value: green").replace("mode: blue", "mode: green"))
    assert "configmap/settings configured" in third.stdout
    assert "deployment.apps/web configured" in third.stdout
    dep = kubectl_json(kubesim, "get", "deploy", "web", "-n", "shop")
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "green"}]
    assert dep["metadata"]["generation"] == 2
    svc = kubectl_json(kubesim, "get", "svc", "web", "-n", "shop")
    assert svc["spec"]["clusterIP"].startswith("10.96.")
    assert 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767


def test_label_namespace_and_get_json(kubesim):
    kubectl(kubesim, "create", "namespace", "bookinfo")      # protobuf body from client-go
    out = kubectl(kubesim, "label", "namespace", "bookinfo", "istio-injection=enabled")
    assert out.stdout.strip() == "namespace/bookinfo labeled"
    ns = kubectl_json(kubesim, "get", "ns", "bookinfo")
    assert ns["metadata"]["labels"] == {"istio-injection": "enabled", "kubernetes.io/metadata.name": "bookinfo"}
    assert ns["status"]["phase"] == "Active"
    names = kubectl(kubesim, "get", "ns", "-l", "istio-injection=enabled", "-o", "name").stdout.split()
    assert names == ["namespace/bookinfo"]
    kubectl(kubesim, "label", "namespace", "bookinfo", "istio-injection-")
    assert "istio-injection" not in kubectl_json(kubesim, "get", "ns", "bookinfo")["metadata"]["labels"]


def test_delete_namespace_cascades(kubesim):
    kubectl(kubesim, "apply", "-f", "-", input=MANIFEST)
    kubectl(kubesim, "create", "secret", "generic", "creds", "-n", "shop", "--from-literal=user=admin")
    assert kubectl_json(kubesim, "get", "secret", "creds", "-n", "shop")["data"] == {"user": "YWRtaW4="}
    out = kubectl(kubesim, "delete", "ns", "shop", "--timeout=20s")
    assert out.stdout.strip() == 'namespace "shop" deleted'
    assert kubectl(kubesim, "get", "ns", "shop", check=False).returncode == 1
    leftover = kubectl_json(kubesim, "get", "deploy,svc,cm,secret", "-A")["items"]
    assert [i for i in leftover if i["metadata"].get("namespace") == "shop"] == []
    err = kubectl(kubesim, "create", "cm", "x", "-n", "shop", check=False)
    assert err.returncode == 1 and 'namespaces "shop" not found' in err.stderr


def test_get_pods_table_counts_native_sidecars(kubesim):
    kubectl(kubesim, "create", "namespace", "demo")
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app-1", "namespace": "demo"},
        "spec": {"initContainers": [{"name": "istio-proxy", "image": "proxyv2", "restartPolicy": "Always"}],
                 "containers": [{"name": "app", "image": "app:1"}]},
    }
    status, _body = kubesim.request("POST", "/api/v1/namespaces/demo/pods", pod)
    assert status == 201
    running = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    st = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
          "initContainerStatuses": [{"name": "istio-proxy", "ready": True, "started": True, "restartCount": 1, "state": running}],
          "containerStatuses": [{"name": "app", "ready": True, "started": True, "restartCount": 2, "state": running}]}
    status, body = kubesim.request("PATCH", "/api/v1/namespaces/demo/pods/app-1/status", {"status": st},
                                   content_type="application/merge-patch+json")
    assert status == 200, body
    lines = kubectl(kubesim, "get", "po", "-n", "demo").stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:4] == ["app-1", "2/2", "Running", "3"]
    # a waiting app container shows its reason and is not counted ready
    st["containerStatuses"][0] = {"name": "app", "ready": False, "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    kubesim.request("PATCH", "/api/v1/namespaces/demo/pods/app-1/status", {"status": st}, content_type="application/merge-patch+json")
    assert kubectl(kubesim, "get", "po", "app-1", "-n", "demo", "--no-headers").stdout.split()[:4] == ["app-1", "1/2", "CrashLoopBackOff", "6"]


def test_get_services_and_deployments_tables(kubesim):
    kubectl(kubesim, "apply", "-f", "-", input=MANIFEST)
    svc = kubectl(kubesim, "get", "svc", "web", "-n", "shop").stdout.splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    cells = svc[1].split()
    assert cells[1] == "LoadBalancer" and cells[3] == "<pending>" and cells[4].startswith("80:") and cells[4].endswith("/TCP")
    dep = kubectl(kubesim, "get", "deploy", "-n", "shop").stdout.splitlines()
    assert dep[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert dep[1].split()[:2] == ["web", "0/2"] or dep[1].split()[0] == "web"
    ns = kubectl(kubesim, "get", "ns", "shop").stdout.splitlines()
    assert ns[0].split() == ["NAME", "STATUS", "AGE"] and ns[1].split()[:2] == ["shop", "Active"]


def test_wrong_token_is_unauthorized(kubesim, tmp_path):
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(open(kubesim.kubeconfig).read().replace(kubesim.token, "not-the-token"))
    import subprocess

    from kubesim.testing import BIN

    proc = subprocess.run([str(BIN / "kubectl"), "--kubeconfig", str(bad), "get", "ns"], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert "Unauthorized" in proc.stderr or "must be logged in" in proc.stderr
    status, body = kubesim.request("GET", "/api/v1/namespaces", headers={"Authorization": "Bearer nope"})
    assert status == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"


def test_cluster_admin_binding_and_can_i(kubesim):
    # step 3 of the classic OKE procedure; kubectl sends this typed object as protobuf
    out = kubectl(kubesim, "create", "clusterrolebinding", "oke-admin", "--clusterrole=cluster-admin", "--user=ocid1.user.oc1..example")
    assert out.stdout.strip() == "clusterrolebinding.rbac.authorization.k8s.io/oke-admin created"
    crb = kubectl_json(kubesim, "get", "clusterrolebinding", "oke-admin")
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}
    assert crb["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ocid1.user.oc1..example"}]
    assert kubectl(kubesim, "auth", "can-i", "create", "deployments", "-n", "istio-system").stdout.strip() == "yes"


def test_kubectl_wait_and_watch_from_kubectl(kubesim):
    kubectl(kubesim, "create", "namespace", "w")
    kubectl(kubesim, "create", "configmap", "c", "-n", "w", "--from-literal=a=1")
    t0 = time.monotonic()
    out = kubectl(kubesim, "wait", "--for=jsonpath={.data.a}=1", "configmap/c", "-n", "w", "--timeout=10s")
    assert "condition met" in out.stdout and time.monotonic() - t0 < 10
