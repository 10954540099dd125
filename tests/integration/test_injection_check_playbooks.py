"""Playbook tests for okemesh.istio.injection_check against kubesim (the Kubernetes API simulator).

kubesim emulates Istio's injector webhook at pod creation (only while an injector
MutatingWebhookConfiguration exists and the namespace/pod labels ask for it), pods becoming
Ready, EndpointSlices for Services, and ambient redirection while a ztunnel DaemonSet runs.
The tests create the control plane objects themselves, then run the module through
ansible-playbook and assert on the saved result.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

# test-side polling of the simulator (the module under test never polls)
from tests.support import wait_for

PLAYBOOK = Path(__file__).parent / "playbooks" / "injection_check.yml"
ISTIOD_IMAGE = "docker.io/istio/pilot:1.28.0"

pytestmark = pytest.mark.slow


def api(sim, method, path, body=None):
    status, resp = sim.request(method, path, body)
    assert status in (200, 201), f"{method} {path}: HTTP {status}: {resp}"
    return resp


def namespace(sim, name, **labels):
    api(sim, "POST", "/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})


def label_namespace(sim, name, **labels):
    status, resp = sim.request("PATCH", f"/api/v1/namespaces/{name}", {"metadata": {"labels": labels}},
                               content_type="application/merge-patch+json")
    assert status == 200, str(resp)


def deployment(sim, ns, name, replicas=2, labels=None, image="registry.example.com/app:1.0"):
    labels = dict(labels or {}, app=name)
    api(sim, "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", {
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": image}]}}},
    })


def control_plane(sim, *, ca_bundle=True, istiod_replicas=1, webhook=True):
    namespace(sim, "istio-system")
    api(sim, "POST", "/apis/apps/v1/namespaces/istio-system/deployments", {
        "metadata": {"name": "istiod", "labels": {"app": "istiod", "istio.io/rev": "default"}},
        "spec": {"replicas": istiod_replicas, "selector": {"matchLabels": {"app": "istiod"}},
                 "template": {"metadata": {"labels": {"app": "istiod", "istio.io/rev": "default", "sidecar.istio.io/inject": "false"}},
                              "spec": {"containers": [{"name": "discovery", "image": ISTIOD_IMAGE}]}}},
    })
    api(sim, "POST", "/api/v1/namespaces/istio-system/services", {
        "metadata": {"name": "istiod", "labels": {"app": "istiod"}},
        "spec": {"selector": {"app": "istiod"}, "ports": [{"name": "https-webhook", "port": 443, "targetPort": 15017}]},
    })
    if webhook:
        create_webhook(sim, ca_bundle=ca_bundle)


def create_webhook(sim, ca_bundle=True):
    client = {"service": {"name": "istiod", "namespace": "istio-system", "port": 443, "path": "/inject"}}
    if ca_bundle:
        client["caBundle"] = "LS0tLS1CRUdJTi1DRVJUSUZJQ0FURS0tLS0t"
    api(sim, "POST", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", {
        "metadata": {"name": "istio-sidecar-injector", "labels": {"app": "sidecar-injector", "istio.io/rev": "default"}},
        "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                      "clientConfig": client}],
    })


def pods(sim, ns):
    return api(sim, "GET", f"/api/v1/namespaces/{ns}/pods")["items"]


def all_ready(sim, ns, count):
    def check():
        items = pods(sim, ns)
        return len(items) == count and all(
            any(c.get("type") == "Ready" and c.get("status") == "True" for c in (p.get("status") or {}).get("conditions") or [])
            for p in items)
    return check


def check(playbook, sim, tmp_path, **options):
    result_file = tmp_path / f"result-{time.monotonic_ns()}.json"
    extra = {"kubeconfig": sim.kubeconfig, "result_file": str(result_file), "ansible_python_interpreter": sys.executable}
    extra.update({f"check_{k}": v for k, v in options.items() if k not in ("check_mode",)})
    run = playbook(PLAYBOOK, extra_vars=extra, check=options.get("check_mode", False))
    data = json.loads(result_file.read_text()) if result_file.exists() else None
    return run, data


@pytest.fixture
def mesh(kubesim):
    """bookinfo labelled for injection; `early` deployed before the injector existed, `late` after."""
    namespace(kubesim, "bookinfo", **{"istio-injection": "enabled"})
    deployment(kubesim, "bookinfo", "early", replicas=2)
    wait_for(all_ready(kubesim, "bookinfo", 2), what="early pods")
    control_plane(kubesim)
    deployment(kubesim, "bookinfo", "late", replicas=3)
    wait_for(all_ready(kubesim, "bookinfo", 5), what="late pods")
    return kubesim


def test_injected_and_stale_pods_are_told_apart(playbook, mesh, tmp_path):
    run, result = check(playbook, mesh, tmp_path, fail_on="never")
    assert run.rc == 0, str(run)
    assert result["changed"] is False and result["failed"] is False
    s = result["summary"]
    assert s["namespaces"] == 1 and s["pods"] == 5
    assert s["by_namespace"]["bookinfo"] == {"mode": "sidecar", "revision": "default", "pods": 5,
                                             "by_status": {"injected": 3, "restart_needed": 2}}
    late = [p for p in result["pods"] if p["owner"] == "deployment/late"]
    assert len(late) == 3 and {p["proxy"] for p in late} == {"native"}  # kubesim's default sidecar_mode
    assert {p["proxy_version"] for p in late} == {"1.28.0"}
    [finding] = result["findings"]
    assert finding["code"] == "IST0103" and finding["severity"] == "error"
    assert finding["object"] == "deployment/early" and len(finding["pods"]) == 2
    assert finding["remedy"] == "kubectl rollout restart deployment/early -n bookinfo"
    assert result["converged"] is False
    assert result["stats"]["lists"] == 7  # one cluster-wide pod LIST + 6 small ones, no GET per pod
    lines = result["report_lines"]
    assert "√ istiod is ready (istio-system, 1/1, version 1.28.0)" in lines
    assert "√ injector service istio-system/istiod has ready endpoints (1)" in lines
    assert "× deployment/early: 2 pods without istio-proxy, restart needed [IST0103]" in lines
    assert "√ 3 pods carry a ready istio-proxy (native 3)" in lines
    assert "× deployment/early: 2 pods without istio-proxy, restart needed [IST0103]" in run.stdout


def test_fail_on_levels(playbook, mesh, tmp_path):
    run, _result = check(playbook, mesh, tmp_path, fail_on="error")
    assert run.rc != 0 and run.failed() == 1, str(run)
    assert "injection check failed (fail_on=error): 1 error(s), 0 warning(s)" in run.stdout
    run, result = check(playbook, mesh, tmp_path, fail_on="error", ignore_errors=True)
    assert result["failed"] is True and result["summary"]["errors"] == 1
    assert result["report_lines"][-1].endswith(" - failed (fail_on=error)")
    # restarting the stale workload fixes it; an explicit unlabelled namespace is then a warning only
    namespace(mesh, "plain")
    api(mesh, "DELETE", "/apis/apps/v1/namespaces/bookinfo/deployments/early")
    wait_for(all_ready(mesh, "bookinfo", 3), what="early gone")
    run, result = check(playbook, mesh, tmp_path, namespaces=["bookinfo", "plain"], fail_on="error")
    assert run.rc == 0, str(run)
    assert [f["code"] for f in result["findings"]] == ["IST0102"]
    run, result = check(playbook, mesh, tmp_path, namespaces=["bookinfo", "plain"], fail_on="warning", ignore_errors=True)
    assert result["failed"] is True and "1 warning(s)" in result["msg"]


def test_restart_then_wait_returns_as_soon_as_converged(playbook, mesh, tmp_path):
    mesh.settings(pod_ready_delay=8.0)  # longer than ansible-playbook takes to start the module
    # what the remedy says: kubectl rollout restart (a template annotation change)
    status, resp = mesh.request(
        "PATCH", "/apis/apps/v1/namespaces/bookinfo/deployments/early",
        {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-26T12:00:00Z"}}}}},
        content_type="application/strategic-merge-patch+json")
    assert status == 200, str(resp)
    start = time.monotonic()
    run, result = check(playbook, mesh, tmp_path, wait=60, fail_on="error")
    took = time.monotonic() - start
    assert run.rc == 0, str(run)
    assert result["converged"] is True and result["findings"] == []
    assert result["summary"]["by_status"] == {"injected": 5}
    assert result["stats"]["watch_events"] > 0 and result["stats"]["evaluations"] > 1
    assert result["elapsed"] < 40, result["elapsed"]  # returned on convergence, far from the 60 s deadline
    assert took < 55


def test_wait_gives_up_at_the_deadline_and_reports(playbook, kubesim, tmp_path):
    kubesim.settings(never_ready_selector="app=broken")
    namespace(kubesim, "shop", **{"istio-injection": "enabled"})
    control_plane(kubesim)
    deployment(kubesim, "shop", "broken", replicas=1)
    # an application that never gets ready is a warning: fail_on=error does not fail, but wait
    # still waits for it (not converged) until the deadline
    run, result = check(playbook, kubesim, tmp_path, wait=3, fail_on="error")
    assert run.rc == 0, str(run)
    assert result["failed"] is False and result["converged"] is False
    assert 2.5 <= result["elapsed"] < 10
    assert [f["code"] for f in result["findings"]] == ["OKM0021"]
    [pod] = result["pods"]
    assert (pod["status"], pod["proxy_ready"], pod["app_ready"]) == ("not_ready", True, False)
    assert pod["owner"] == "deployment/broken"
    run, result = check(playbook, kubesim, tmp_path, wait=1, fail_on="warning", ignore_errors=True)
    assert result["failed"] is True and result["msg"] == "injection check failed (fail_on=warning): 0 error(s), 1 warning(s)"


def test_broken_control_plane(playbook, kubesim, tmp_path):
    namespace(kubesim, "bookinfo", **{"istio-injection": "enabled"})
    control_plane(kubesim, ca_bundle=False, istiod_replicas=0)
    run, result = check(playbook, kubesim, tmp_path, fail_on="never")
    assert run.rc == 0, str(run)
    codes = sorted(f["code"] for f in result["findings"])
    assert codes == ["OKM0002", "OKM0004", "OKM0006"]
    lines = result["report_lines"]
    assert "× istiod is not ready (istio-system, 0/0) [OKM0002]" in lines
    assert "× injector service istio-system/istiod has no ready endpoints [OKM0006]" in lines


def test_no_injector_means_missing_proxy_not_restart(playbook, kubesim, tmp_path):
    namespace(kubesim, "bookinfo", **{"istio-injection": "enabled"})
    control_plane(kubesim, webhook=False)
    deployment(kubesim, "bookinfo", "web", replicas=1)
    wait_for(all_ready(kubesim, "bookinfo", 1), what="web pod")
    run, result = check(playbook, kubesim, tmp_path, fail_on="never")
    assert sorted(f["code"] for f in result["findings"]) == ["IST0103", "OKM0003"]
    assert result["pods"][0]["status"] == "missing_proxy"


def test_check_mode_reads_only(playbook, mesh, tmp_path):
    before = {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in pods(mesh, "bookinfo")}
    run, result = check(playbook, mesh, tmp_path, fail_on="never", check_mode=True)
    assert run.rc == 0, str(run)
    assert result["changed"] is False and result["summary"]["pods"] == 5
    assert run.changed() == 1  # only the test's own "save the result" task
    after = {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in pods(mesh, "bookinfo")}
    assert after == before


def test_ambient_and_opt_outs(playbook, kubesim, tmp_path):
    control_plane(kubesim)
    api(kubesim, "POST", "/apis/apps/v1/namespaces/istio-system/daemonsets", {
        "metadata": {"name": "ztunnel", "labels": {"app": "ztunnel"}},
        "spec": {"selector": {"matchLabels": {"app": "ztunnel"}},
                 "template": {"metadata": {"labels": {"app": "ztunnel", "sidecar.istio.io/inject": "false"}},
                              "spec": {"containers": [{"name": "istio-proxy", "image": "docker.io/istio/ztunnel:1.28.0"}]}}},
    })
    wait_for(lambda: ((api(kubesim, "GET", "/apis/apps/v1/namespaces/istio-system/daemonsets/ztunnel").get("status") or {})
                      .get("numberReady") or 0) > 0, what="ztunnel ready")
    namespace(kubesim, "amb", **{"istio.io/dataplane-mode": "ambient"})
    namespace(kubesim, "side", **{"istio-injection": "enabled"})
    deployment(kubesim, "amb", "ratings", replicas=2)
    deployment(kubesim, "side", "opted", replicas=1, labels={"sidecar.istio.io/inject": "false"})
    deployment(kubesim, "side", "meshed", replicas=1)
    wait_for(all_ready(kubesim, "amb", 2), what="ambient pods")
    wait_for(all_ready(kubesim, "side", 2), what="side pods")
    run, result = check(playbook, kubesim, tmp_path, fail_on="warning")
    assert run.rc == 0, str(run)
    by_ns = result["summary"]["by_namespace"]
    assert by_ns["amb"]["mode"] == "ambient" and by_ns["amb"]["by_status"] == {"ambient": 2}
    assert by_ns["side"]["by_status"] == {"injected": 1, "excluded": 1}
    assert result["control_plane"]["ztunnel"]["ok"] is True
    assert any(line.startswith("√ 1 pod out of the mesh on purpose (opted out") for line in result["report_lines"])


def test_wait_watches_the_control_plane_until_it_is_ready(playbook, kubesim, tmp_path):
    namespace(kubesim, "bookinfo", **{"istio-injection": "enabled"})
    control_plane(kubesim, istiod_replicas=0)

    def scale_up():
        status, resp = kubesim.request("PATCH", "/apis/apps/v1/namespaces/istio-system/deployments/istiod",
                                       {"spec": {"replicas": 1}}, content_type="application/merge-patch+json")
        assert status == 200, str(resp)

    timer = threading.Timer(6.0, scale_up)  # after ansible-playbook has started the module
    timer.start()
    try:
        run, result = check(playbook, kubesim, tmp_path, wait=90, fail_on="error")
    finally:
        timer.cancel()
    assert run.rc == 0, str(run)
    assert result["converged"] is True and result["findings"] == []
    assert result["control_plane"]["istiod"][0]["ready_replicas"] == 1
    assert result["stats"]["evaluations"] > 1 and result["stats"]["watch_events"] > 0
    assert result["elapsed"] < 60


def test_wait_survives_dropped_watches(playbook, mesh, tmp_path):
    """kubesim cuts every watch stream after 0.5 s: the module re-watches from its resourceVersion."""
    mesh.settings(pod_ready_delay=8.0, fault_watch_drop_after=0.5)
    status, resp = mesh.request(
        "PATCH", "/apis/apps/v1/namespaces/bookinfo/deployments/early",
        {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-26T12:30:00Z"}}}}},
        content_type="application/strategic-merge-patch+json")
    assert status == 200, str(resp)
    run, result = check(playbook, mesh, tmp_path, wait=60, fail_on="error")
    assert run.rc == 0, str(run)
    assert result["converged"] is True and result["summary"]["by_status"] == {"injected": 5}
    assert result["stats"]["watch_restarts"] >= 1 and result["stats"]["watch_events"] > 0, result["stats"]
    assert result["elapsed"] < 45
