"""kubesim cluster behaviour: graceful pod termination, foreground deletion through the garbage collector,
node taints (scheduling and NoExecute eviction), seen through kubectl and the kubernetes client."""

from __future__ import annotations

import time

from kubernetes import client

from kubesim.testing import api_client, apply, get_json, kubectl, namespace, pods, wait_for


def _pod(name: str, ns: str, command: list[str] | None, grace: int = 30, **spec: object) -> dict:
    c: dict = {"name": "c", "image": "busybox"}
    if command:
        c["command"] = command
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"containers": [c], "terminationGracePeriodSeconds": grace, **spec}}


def _job(name: str, ns: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"metadata": {"labels": {"job": name}},
                                  "spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "600"]}]}}}}


def _running(ks, ns: str, selector: str) -> list[dict]:
    return wait_for(lambda: [p for p in pods(ks, ns, selector) if p["status"].get("phase") == "Running"] or None,
                    what=f"running pods {selector}")


def test_a_running_pod_terminates_within_its_grace_period(kubesim):
    apply(kubesim, [namespace("grace"), _pod("sleeper", "grace", ["sleep", "600"], grace=3), _pod("server", "grace", None)])
    _running(kubesim, "grace", "app=sleeper")
    _running(kubesim, "grace", "app=server")
    deleted = client.CoreV1Api(api_client(kubesim)[0]).delete_namespaced_pod("sleeper", "grace")
    assert deleted.metadata.deletion_timestamp and deleted.metadata.deletion_grace_period_seconds == 3
    start = time.monotonic()
    # `sleep` as PID 1 ignores SIGTERM: the pod stays Terminating (phase Running) until the grace period ends
    pod = get_json(kubesim, "-n", "grace", "pod", "sleeper")
    assert pod["metadata"]["deletionTimestamp"] and pod["status"]["phase"] == "Running"
    kubectl(kubesim, "-n", "grace", "wait", "--for=delete", "pod/sleeper", "--timeout=20s")
    assert 2.0 <= time.monotonic() - start < 15
    # an image entrypoint exits on SIGTERM: gone at once (kubectl delete waits for it)
    start = time.monotonic()
    kubectl(kubesim, "-n", "grace", "delete", "pod", "server", "--timeout=20s")
    assert time.monotonic() - start < 10
    assert kubectl(kubesim, "-n", "grace", "get", "pod", "server", check=False).returncode != 0


def test_grace_period_zero_and_force_delete_remove_at_once(kubesim):
    apply(kubesim, [namespace("force"), _pod("sleeper", "force", ["sleep", "600"], grace=60)])
    _running(kubesim, "force", "app=sleeper")
    kubectl(kubesim, "-n", "force", "delete", "pod", "sleeper", "--wait=false")
    assert get_json(kubesim, "-n", "force", "pod", "sleeper")["metadata"]["deletionGracePeriodSeconds"] == 60
    kubectl(kubesim, "-n", "force", "delete", "pod", "sleeper", "--grace-period=0", "--force")
    assert kubectl(kubesim, "-n", "force", "get", "pod", "sleeper", check=False).returncode != 0


def test_foreground_deletion_holds_the_owner_until_its_pods_are_gone(kubesim):
    apply(kubesim, [namespace("fg"), _job("fgjob", "fg")])
    pod = _running(kubesim, "fg", "job=fgjob")[0]
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    # shorten the wait: the pod's grace period is what holds the Job
    kubectl(kubesim, "-n", "fg", "delete", "job", "fgjob", "--cascade=foreground", "--wait=false")
    job = get_json(kubesim, "-n", "fg", "job", "fgjob")
    assert job["metadata"]["deletionTimestamp"] and "foregroundDeletion" in job["metadata"]["finalizers"]
    p = get_json(kubesim, "-n", "fg", "pod", pod["metadata"]["name"])
    assert p["metadata"]["deletionTimestamp"] and p["status"]["phase"] == "Running"
    kubectl(kubesim, "-n", "fg", "delete", "pod", pod["metadata"]["name"], "--grace-period=1")
    wait_for(lambda: kubectl(kubesim, "-n", "fg", "get", "job", "fgjob", check=False).returncode != 0, what="job gone")
    assert pods(kubesim, "fg", "job=fgjob") == []


def test_background_deletion_leaves_the_pod_terminating(kubesim):
    apply(kubesim, [namespace("bg"), _job("bgjob", "bg")])
    pod = _running(kubesim, "bg", "job=bgjob")[0]
    kubectl(kubesim, "-n", "bg", "delete", "job", "bgjob", "--cascade=background")
    assert kubectl(kubesim, "-n", "bg", "get", "job", "bgjob", check=False).returncode != 0
    p = wait_for(lambda: next((x for x in pods(kubesim, "bg", "job=bgjob") if x["metadata"].get("deletionTimestamp")), None),
                 what="the garbage collector deletes the pod")
    assert p["metadata"]["name"] == pod["metadata"]["name"] and p["status"]["phase"] == "Running"


def test_taints_steer_scheduling_and_noexecute_evicts(kubesim):
    nodes = sorted(n["metadata"]["name"] for n in get_json(kubesim, "nodes")["items"])
    node = nodes[0]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}
    apply(kubesim, [namespace("taint"), _pod("victim", "taint", ["sleep", "600"], grace=1, affinity=affinity),
                    {**_pod("tolerant", "taint", ["sleep", "600"], grace=1, affinity=affinity,
                            tolerations=[{"key": "key1", "operator": "Equal", "value": "value1", "effect": "NoExecute"}])}])
    _running(kubesim, "taint", "app=victim")
    _running(kubesim, "taint", "app=tolerant")
    # strategic merge patch of spec.taints, as kubernetes.core.k8s_taint sends it
    core = client.CoreV1Api(api_client(kubesim)[0])
    core.patch_node(node, {"spec": {"taints": [{"key": "key1", "value": "value1", "effect": "NoExecute"}]}})
    assert core.read_node(node).spec.taints[0].key == "key1"
    wait_for(lambda: not pods(kubesim, "taint", "app=victim"), timeout=20, what="the untolerated pod evicted")
    assert [p["status"]["phase"] for p in pods(kubesim, "taint", "app=tolerant")] == ["Running"]
    events = get_json(kubesim, "-n", "taint", "events")["items"]
    assert any(e["reason"] == "TaintManagerEviction" and e["involvedObject"]["name"] == "victim" for e in events)
    # a new pod pinned to the tainted node is not scheduled
    apply(kubesim, _pod("late", "taint", None, affinity=affinity))
    late = wait_for(lambda: next((p for p in pods(kubesim, "taint", "app=late")
                                  if (p["status"].get("conditions") or [{}])[0].get("reason") == "Unschedulable"), None), what="unschedulable")
    assert not late["spec"].get("nodeName")
    core.patch_node(node, {"spec": {"taints": []}})      # what k8s_taint sends when it removes the last taint
    assert "taints" not in get_json(kubesim, "node", node)["spec"]   # NodeSpec.taints is omitempty
    wait_for(lambda: [p for p in pods(kubesim, "taint", "app=late") if p["status"].get("phase") == "Running"] or None,
             what="scheduled once the taint is gone")
