"""The classic procedure's injection race, against kubesim with the real-chart webhook flow (the
stand-in charts install the injector without a CA bundle; kubesim patches it in the way istiod does
once istiod is ready, and the API server only calls the injector when it can).

* bookinfo applied before istiod is installed: its pods start without a sidecar, the istio role
  then installs istiod, okemesh.istio.injection_check reports every pod as needing a restart
  (IST0103), and `kubectl rollout restart` fixes it;
* bookinfo applied while istiod is installed but not ready: the injector (failurePolicy Fail) cannot
  be called, the API server refuses the pods and the ReplicaSets record FailedCreate; once istiod
  is ready the controllers' retries create them injected, with no restart.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.stage_istio_release import staged_for_tests
from tests.support import kubectl, kubectl_json, run, wait_for

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).parent / "playbooks"
RELEASE = staged_for_tests()
BOOKINFO = RELEASE / "samples" / "bookinfo" / "platform" / "kube" / "bookinfo.yaml"
DEPLOYMENTS = {"details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3", "productpage-v1"}

pytestmark = pytest.mark.slow


def injection_check(playbook, sim, tmp_path, name: str) -> dict:
    result_file = tmp_path / f"{name}.json"
    r = playbook(PLAYBOOKS / "injection_check.yml", extra_vars={
        "kubeconfig": sim.kubeconfig, "result_file": str(result_file), "ansible_python_interpreter": sys.executable,
        "check_namespaces": ["bookinfo"], "check_ignore_errors": True})
    assert r.rc == 0, str(r)
    return json.loads(result_file.read_text())


def label_and_apply_bookinfo(sim) -> None:
    """Steps 7 and 8 of the classic procedure."""
    kubectl(sim, "create", "namespace", "bookinfo")
    kubectl(sim, "label", "namespace", "bookinfo", "istio-injection=enabled")
    kubectl(sim, "-n", "bookinfo", "apply", "-f", str(BOOKINFO))


def rolled_out(sim) -> None:
    for name in sorted(DEPLOYMENTS):
        kubectl(sim, "-n", "bookinfo", "rollout", "status", f"deployment/{name}", "--timeout=60s")


def proxies(sim) -> list[bool]:
    pods = kubectl_json(sim, "-n", "bookinfo", "get", "pods")["items"]
    return [any(c["name"] == "istio-proxy" for c in p["spec"].get("initContainers", []) + p["spec"]["containers"]) for p in pods]


def test_bookinfo_before_istiod_is_caught_as_uninjected_and_fixed_by_a_restart(kubesim, playbook, tmp_path):
    label_and_apply_bookinfo(kubesim)
    rolled_out(kubesim)
    assert proxies(kubesim) == [False] * 6, "no injector webhook yet: the pods start without a sidecar"

    installed = playbook(PLAYBOOKS / "istio.yml", inventory="localhost,", args=["-c", "local"], extra_vars={
        "ansible_python_interpreter": sys.executable, "okemesh_kubeconfig": kubesim.kubeconfig, "istio_release_dir": str(RELEASE),
        "istio_work_dir": str(tmp_path / "work"), "istio_wait_timeout": 60, "istio_wait_delay": 1})
    assert installed.rc == 0, str(installed)
    injector = kubectl_json(kubesim, "get", "mutatingwebhookconfiguration", "istio-sidecar-injector")
    assert all(h["clientConfig"].get("caBundle") for h in injector["webhooks"]), "istiod patched its CA in"

    caught = injection_check(playbook, kubesim, tmp_path, "before-restart")
    assert caught["failed"] is True
    assert caught["summary"]["pods"] == 6
    assert caught["summary"]["by_status"] == {"restart_needed": 6}
    assert {f["code"] for f in caught["findings"] if f["severity"] == "error"} == {"IST0103"}

    time.sleep(1.1)   # kubectl rollout restart stamps the second: never twice within one
    kubectl(kubesim, "-n", "bookinfo", "rollout", "restart", "deployment")
    rolled_out(kubesim)
    wait_for(lambda: proxies(kubesim) == [True] * 6, timeout=60, what="six injected pods after the restart")
    fixed = injection_check(playbook, kubesim, tmp_path, "after-restart")
    assert fixed["failed"] is False
    assert fixed["summary"]["by_status"] == {"injected": 6}
    assert fixed["summary"]["errors"] == 0


def test_bookinfo_while_istiod_is_not_ready_is_refused_then_created_injected(kubesim, playbook, tmp_path):
    charts = RELEASE / "manifests" / "charts"
    run(kubesim, "helm", "install", "istio-base", str(charts / "base"), "-n", "istio-system", "--create-namespace")
    # istiod installed, not ready yet (no replica here; on a cluster: its pod is still starting)
    run(kubesim, "helm", "install", "istiod", str(charts / "istio-control" / "istio-discovery"), "-n", "istio-system",
        "--set", "replicaCount=0")
    label_and_apply_bookinfo(kubesim)
    failure = wait_for(lambda: [c for r in kubectl_json(kubesim, "-n", "bookinfo", "get", "replicasets")["items"]
                                for c in r.get("status", {}).get("conditions", []) if c["type"] == "ReplicaFailure"], what="ReplicaFailure")[0]
    assert failure["reason"] == "FailedCreate"
    assert failure["message"].startswith('Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io": '
                                         'failed to call webhook: Post "https://istiod.istio-system.svc:443/inject?timeout=10s": ')
    assert kubectl_json(kubesim, "-n", "bookinfo", "get", "pods")["items"] == []

    run(kubesim, "helm", "upgrade", "istiod", str(charts / "istio-control" / "istio-discovery"), "-n", "istio-system",
        "--reuse-values", "--set", "replicaCount=1", "--wait")
    rolled_out(kubesim)
    assert proxies(kubesim) == [True] * 6
    ok = injection_check(playbook, kubesim, tmp_path, "no-restart-needed")
    assert ok["failed"] is False and ok["summary"]["by_status"] == {"injected": 6}
