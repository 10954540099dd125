"""Fault knobs of kubesim, each seen by a real client the way the real failure looks."""

from __future__ import annotations

import time

import pytest
from kubesim.testing import api_client, apply, deployment, get_json, kubectl, namespace, pods, wait_for


def test_never_ready_pods_crash_loop_and_rollout_times_out(kubesim):
    kubesim.settings(never_ready_selector="app=broken")
    apply(kubesim, [namespace("faults"), deployment("broken", "faults", replicas=2), deployment("fine", "faults")])
    kubectl(kubesim, "-n", "faults", "rollout", "status", "deployment/fine", "--timeout=30s")
    out = kubectl(kubesim, "-n", "faults", "rollout", "status", "deployment/broken", "--timeout=3s", check=False)
    assert out.returncode != 0
    assert "0 of 2 updated replicas are available" in out.stdout

    def restarted():
        ps = pods(kubesim, "faults", "app=broken")
        counts = [p["status"]["containerStatuses"][0]["restartCount"] for p in ps if p["status"].get("containerStatuses")]
        return len(counts) == 2 and min(counts) >= 2 and ps
    ps = wait_for(restarted, timeout=15, what="restartCount growing")
    for p in ps:
        cs = p["status"]["containerStatuses"][0]
        assert p["status"]["phase"] == "Running"
        assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert cs["lastState"]["terminated"]["reason"] == "Error" and cs["lastState"]["terminated"]["exitCode"] == 1
        assert cs["ready"] is False
        ready = {c["type"]: c for c in p["status"]["conditions"]}["Ready"]
        assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    table = kubectl(kubesim, "-n", "faults", "get", "pods", "-l", "app=broken", "--no-headers").stdout
    assert table.count("CrashLoopBackOff") == 2 and "0/1" in table

    # python client (what kubernetes.core uses) sees the same
    api, client = api_client(kubesim)
    d = client.AppsV1Api(api).read_namespaced_deployment("broken", "faults")
    assert not d.status.available_replicas and d.status.unavailable_replicas == 2
    assert {c.type: c.status for c in d.status.conditions}["Available"] == "False"
    ep = get_json(kubesim, "-n", "faults", "deployment", "fine")["status"]
    assert ep["availableReplicas"] == 1

    # the fault is lifted: the next restart comes up Ready, as a fixed container would
    kubesim.settings(never_ready_selector="")
    kubectl(kubesim, "-n", "faults", "rollout", "status", "deployment/broken", "--timeout=30s")


def test_image_pull_failure(kubesim):
    kubesim.settings(image_pull_fail_pattern="private.example.com/")
    apply(kubesim, [namespace("pull"), deployment("pull", "pull", image="private.example.com/team/app:2.0")])
    p = wait_for(lambda: [p for p in pods(kubesim, "pull") if p["status"].get("containerStatuses")], what="pod status")[0]
    cs = p["status"]["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert cs["state"]["waiting"]["message"] == 'Back-off pulling image "private.example.com/team/app:2.0"'
    assert p["status"]["phase"] == "Pending"
    assert "ImagePullBackOff" in kubectl(kubesim, "-n", "pull", "get", "pods", "--no-headers").stdout
    out = kubectl(kubesim, "-n", "pull", "wait", "--for=condition=Ready", "pod", "--all", "--timeout=2s", check=False)
    assert out.returncode != 0
    events = get_json(kubesim, "-n", "pull", "events", "--field-selector", f"involvedObject.name={p['metadata']['name']}")["items"]
    assert {(e["type"], e["reason"]) for e in events} >= {("Warning", "Failed"), ("Normal", "BackOff")}


def test_api_errors_and_429_retry_after(kubesim):
    from kubernetes.client.exceptions import ApiException

    api, client = api_client(kubesim)
    core = client.CoreV1Api(api)
    kubesim.settings(fault_error_rate=1.0, fault_error_code=500, fault_paths="/api/v1/namespaces/default/configmaps")
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default")
    assert err.value.status == 500
    assert core.list_namespace().items, "requests outside fault_paths are not faulted"

    kubesim.settings(fault_error_code=429, fault_retry_after=3)
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default")
    assert err.value.status == 429
    assert err.value.headers["Retry-After"] == "3"
    kubesim.settings(fault_retry_after=1)
    t0 = time.monotonic()
    out = kubectl(kubesim, "get", "configmaps", "-n", "default", "--request-timeout=4s", check=False, timeout=60)
    elapsed = time.monotonic() - t0
    assert out.returncode != 0
    # client-go honours Retry-After: it keeps retrying until its own deadline instead of failing at once
    assert elapsed >= 2.5, (elapsed, out.stderr)
    assert any(s in out.stderr.lower() for s in ("too many requests", "429", "context deadline exceeded")), out.stderr
    kubesim.settings(fault_error_rate=0.0)
    assert core.list_namespaced_config_map("default").items is not None


def test_latency_and_dropped_watch(kubesim):
    from kubernetes import watch

    api, client = api_client(kubesim)
    core = client.CoreV1Api(api)
    kubesim.settings(fault_latency=0.4)
    t0 = time.monotonic()
    core.list_namespace()
    assert time.monotonic() - t0 >= 0.4
    kubesim.settings(fault_latency=0.0, fault_watch_drop_after=1.0)
    t0 = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespace, timeout_seconds=30))
    elapsed = time.monotonic() - t0
    assert events, "initial ADDED events arrive before the cut"
    assert elapsed < 10, f"the watch stream was cut by the server after ~1s, not at the 30s timeout ({elapsed:.1f}s)"


def test_progress_deadline_exceeded(kubesim):
    """A rollout that never becomes available ends the way kube-controller-manager reports it."""
    kubesim.settings(never_ready_selector="app=stuck")
    d = deployment("stuck", "faults")
    d["spec"]["progressDeadlineSeconds"] = 2
    apply(kubesim, [namespace("faults"), d])
    out = kubectl(kubesim, "-n", "faults", "rollout", "status", "deployment/stuck", "--timeout=30s", check=False)
    assert out.returncode != 0
    assert 'deployment "stuck" exceeded its progress deadline' in out.stderr
    cond = {c["type"]: c for c in get_json(kubesim, "-n", "faults", "deployment", "stuck")["status"]["conditions"]}["Progressing"]
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
