"""okemesh.istio.injection_check's main() against kubesim: report, fail_on, check mode, K8S_AUTH_* env,
the wait deadline, API errors and retries through injected faults.

main() runs in-process with ansible-core's patch_module_args and talks with the real kubernetes
client to kubesim (the Kubernetes API simulator, tools/kubesim).
"""

from __future__ import annotations

import json
import time

import pytest

from ansible_collections.okemesh.istio.plugins.modules import injection_check
from tests.support.modules import run_module


def run_main(capsys, args: dict) -> dict:
    return run_module(injection_check, capsys, args)


def seed(sim):
    def post(path, body):
        status, resp = sim.request("POST", path, body)
        assert status == 201, str(resp)

    post("/api/v1/namespaces", {"metadata": {"name": "bookinfo", "labels": {"istio-injection": "enabled"}}})
    post("/api/v1/namespaces/bookinfo/pods", {  # no injector yet: created without a proxy
        "metadata": {"name": "old", "labels": {"app": "old"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]},
    })


def test_main_reports_and_fails_on_error(kubesim, capsys):
    seed(kubesim)
    out = run_main(capsys, {"kubeconfig": kubesim.kubeconfig})
    assert out["failed"] is True and out["changed"] is False
    assert out["msg"] == "injection check failed (fail_on=error): 3 error(s), 0 warning(s)"
    assert sorted(f["code"] for f in out["findings"]) == ["IST0103", "OKM0001", "OKM0003"]
    assert out["pods"][0]["status"] == "missing_proxy"
    assert out["report_lines"][-1].startswith("Status check results are ×")
    assert kubesim.kubeconfig not in json.dumps(out["report_lines"])


def test_main_fail_on_never_and_check_mode(kubesim, capsys):
    seed(kubesim)
    out = run_main(capsys, {"kubeconfig": kubesim.kubeconfig, "fail_on": "never", "_ansible_check_mode": True,
                            "pod_details": "none"})
    assert "failed" not in out and out["changed"] is False
    assert out["summary"]["errors"] == 3 and out["pods"] == []
    assert out["summary"]["by_status"] == {"missing_proxy": 1}


def test_main_honours_k8s_auth_env(kubesim, capsys, monkeypatch):
    seed(kubesim)
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", kubesim.kubeconfig)
    out = run_main(capsys, {"namespaces": ["bookinfo"], "fail_on": "never", "label_selector": "app=old"})
    assert out["summary"]["pods"] == 1


def test_main_wait_deadline(kubesim, capsys):
    seed(kubesim)
    start = time.monotonic()
    out = run_main(capsys, {"kubeconfig": kubesim.kubeconfig, "wait": 1, "fail_on": "never"})
    assert out["converged"] is False and 0.9 <= out["elapsed"] and time.monotonic() - start < 10


def test_main_kubernetes_error_payload(kubesim, capsys):
    out = run_main(capsys, {"host": kubesim.url, "api_key": "wrong-token", "ca_cert": kubesim.ca})
    assert out["failed"] is True and out["status"] == 401
    assert out["msg"].startswith("GET /api/v1/namespaces: HTTP 401")


@pytest.mark.parametrize(("code", "retry_after"), [(500, 0), (503, 0), (429, 1)])
def test_main_converges_through_api_faults(kubesim, capsys, code, retry_after):
    """Half of the API requests fail: without retries the 7 LISTs all succeed 1 time in 128."""
    seed(kubesim)
    kubesim.settings(fault_error_rate=0.5, fault_error_code=code, fault_retry_after=retry_after)
    try:
        out = run_main(capsys, {"kubeconfig": kubesim.kubeconfig, "fail_on": "never"})
    finally:
        kubesim.settings(fault_error_rate=0.0)
    assert "failed" not in out, out.get("msg")
    assert out["summary"]["by_status"] == {"missing_proxy": 1} and out["stats"]["lists"] == 7
    assert isinstance(out["stats"]["api_retries"], int)
