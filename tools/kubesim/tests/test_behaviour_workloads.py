"""kubesim cluster behaviour: workloads, pods, nodes and endpoints seen through real clients."""

from __future__ import annotations

import time

from kubesim.testing import apply, deployment, get_json, kubectl, namespace, pods, service, wait_for


def test_deployment_rolls_out_scales_and_rolls_on_template_change(kubesim):
    apply(kubesim, [namespace("shop"), deployment("web", "shop", replicas=3),
                    service("web", "shop", {"app": "web"}, [{"name": "http", "port": 80, "targetPort": "http"}])])
    out = kubectl(kubesim, "-n", "shop", "rollout", "status", "deployment/web", "--timeout=30s")
    assert 'deployment "web" successfully rolled out' in out.stdout

    d = get_json(kubesim, "-n", "shop", "deployment", "web")
    st = d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"], st["availableReplicas"]) == (3, 3, 3, 3)
    assert st["observedGeneration"] == d["metadata"]["generation"]
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Available"]["status"] == "True"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"

    rs = get_json(kubesim, "-n", "shop", "replicasets")["items"]
    assert len(rs) == 1
    h = rs[0]["metadata"]["labels"]["pod-template-hash"]
    assert rs[0]["metadata"]["name"] == f"web-{h}"
    assert rs[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert rs[0]["metadata"]["ownerReferences"][0]["controller"] is True
    ps = pods(kubesim, "shop", "app=web")
    assert len(ps) == 3
    for p in ps:
        assert p["metadata"]["name"].startswith(f"web-{h}-") and len(p["metadata"]["name"]) == len(f"web-{h}-") + 5
        assert p["metadata"]["labels"]["pod-template-hash"] == h
        assert p["status"]["phase"] == "Running"
        assert p["spec"]["nodeName"].startswith("kubesim-node-")
        assert {c["type"]: c["status"] for c in p["status"]["conditions"]}["Ready"] == "True"
        assert p["status"]["containerStatuses"][0]["ready"] is True
        assert p["status"]["podIP"]

    # endpoints follow the ready pods (named targetPort resolved to the container port)
    ep = get_json(kubesim, "-n", "shop", "endpoints", "web")
    assert sorted(a["ip"] for a in ep["subsets"][0]["addresses"]) == sorted(p["status"]["podIP"] for p in ps)
    assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    slices = get_json(kubesim, "-n", "shop", "endpointslices.discovery.k8s.io", "-l", "kubernetes.io/service-name=web")["items"]
    assert len(slices) == 1 and len(slices[0]["endpoints"]) == 3

    # scale up and down
    kubectl(kubesim, "-n", "shop", "scale", "deployment/web", "--replicas=5")
    kubectl(kubesim, "-n", "shop", "rollout", "status", "deployment/web", "--timeout=30s")
    assert len(pods(kubesim, "shop", "app=web")) == 5
    kubectl(kubesim, "-n", "shop", "scale", "deployment/web", "--replicas=2")
    wait_for(lambda: len(pods(kubesim, "shop", "app=web")) == 2, what="scale down to 2 pods")
    kubectl(kubesim, "-n", "shop", "rollout", "status", "deployment/web", "--timeout=30s")
    wait_for(lambda: len(get_json(kubesim, "-n", "shop", "endpoints", "web")["subsets"][0]["addresses"]) == 2, what="endpoints shrink")

    # template change: a new ReplicaSet takes over, the old one is scaled to 0
    kubectl(kubesim, "-n", "shop", "rollout", "restart", "deployment/web")
    out = kubectl(kubesim, "-n", "shop", "rollout", "status", "deployment/web", "--timeout=30s")
    assert "successfully rolled out" in out.stdout
    rs = {r["metadata"]["name"]: r for r in get_json(kubesim, "-n", "shop", "replicasets")["items"]}
    assert len(rs) == 2
    assert rs[f"web-{h}"]["spec"]["replicas"] == 0
    new = next(r for n, r in rs.items() if n != f"web-{h}")
    assert new["spec"]["replicas"] == 2 and new["status"]["readyReplicas"] == 2
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    # the old pods terminate gracefully (Terminating for a moment after the rollout, as on a real cluster)
    wait_for(lambda: {p["metadata"]["labels"]["pod-template-hash"] for p in pods(kubesim, "shop", "app=web")}
             == {new["metadata"]["labels"]["pod-template-hash"]}, what="old pods gone")


def test_python_client_sees_kubernetes_core_wait_conditions(kubesim):
    """The status fields kubernetes.core's `wait: true` (deployment_ready) checks."""
    from kubesim.testing import api_client

    api, client = api_client(kubesim)
    apply(kubesim, [namespace("wait"), deployment("api", "wait", replicas=4)])
    apps = client.AppsV1Api(api)

    def ready():
        d = apps.read_namespaced_deployment("api", "wait")
        s = d.status
        return (d.spec.replicas == (s.replicas or 0) and s.available_replicas == s.replicas
                and s.observed_generation == d.metadata.generation and not s.unavailable_replicas) and d
    d = wait_for(ready, what="deployment_ready")
    assert d.status.ready_replicas == 4
    core = client.CoreV1Api(api)
    podlist = core.list_namespaced_pod("wait", label_selector="app=api")
    assert len(podlist.items) == 4
    assert all(all(cs.ready for cs in p.status.container_statuses) for p in podlist.items)


def test_statefulset_daemonset_job(kubesim):
    apply(kubesim, [namespace("data"), {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "data"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "2Gi"}}}}]},
    }, {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "data"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "agent", "image": "busybox:1.36"}]}}},
    }, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "data"},
        "spec": {"completions": 2, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "busybox:1.36"}]}}},
    }])
    out = kubectl(kubesim, "-n", "data", "rollout", "status", "statefulset/db", "--timeout=30s")
    assert "partitioned roll out complete" in out.stdout or "roll out complete" in out.stdout
    names = sorted(p["metadata"]["name"] for p in pods(kubesim, "data", "app=db"))
    assert names == ["db-0", "db-1", "db-2"]
    pvcs = {p["metadata"]["name"]: p for p in get_json(kubesim, "-n", "data", "pvc")["items"]}
    assert sorted(pvcs) == ["data-db-0", "data-db-1", "data-db-2"]
    assert pvcs["data-db-1"]["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "2Gi"}}
    db1 = next(p for p in pods(kubesim, "data", "app=db") if p["metadata"]["name"] == "db-1")
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}} in db1["spec"]["volumes"]
    sts = get_json(kubesim, "-n", "data", "statefulset", "db")["status"]
    assert sts["readyReplicas"] == 3 and sts["currentRevision"] == sts["updateRevision"]

    kubectl(kubesim, "-n", "data", "rollout", "status", "daemonset/agent", "--timeout=30s")
    agents = pods(kubesim, "data", "app=agent")
    nodes = [n["metadata"]["name"] for n in get_json(kubesim, "nodes")["items"]]
    assert sorted(nodes) == ["kubesim-node-1", "kubesim-node-2", "kubesim-node-3"]
    assert sorted(p["spec"]["nodeName"] for p in agents) == sorted(nodes)
    ds = get_json(kubesim, "-n", "data", "daemonset", "agent")["status"]
    assert (ds["desiredNumberScheduled"], ds["numberReady"], ds["updatedNumberScheduled"]) == (3, 3, 3)

    kubectl(kubesim, "-n", "data", "wait", "--for=condition=complete", "job/migrate", "--timeout=30s")
    job = get_json(kubesim, "-n", "data", "job", "migrate")["status"]
    assert job["succeeded"] == 2 and "completionTime" in job
    assert all(p["status"]["phase"] == "Succeeded" for p in pods(kubesim, "data", "batch.kubernetes.io/job-name=migrate"))

    # the node count is a live knob: a fourth node gets a DaemonSet pod
    kubesim.settings(nodes=4)
    wait_for(lambda: len(pods(kubesim, "data", "app=agent")) == 4, what="daemonset pod on kubesim-node-4")
    node = get_json(kubesim, "node", "kubesim-node-4")
    assert node["status"]["nodeInfo"]["kubeletVersion"] == kubesim.settings()["kubernetes_version"]


def test_pod_ready_delay_is_honoured(kubesim):
    kubesim.settings(pod_ready_delay=3.0)
    apply(kubesim, [namespace("slow"), deployment("slow", "slow")])
    time.sleep(0.5)
    p = pods(kubesim, "slow")[0]
    assert p["status"]["phase"] == "Pending"
    out = kubectl(kubesim, "-n", "slow", "wait", "--for=condition=Ready", "pod", "-l", "app=slow", "--timeout=10s")
    assert "condition met" in out.stdout
