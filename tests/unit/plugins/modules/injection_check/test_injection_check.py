"""Entry tests for okemesh.istio.injection_check: argument spec vs docs, and main() against kubesim.

main() runs in-process with ansible-core's patch_module_args and talks with the real kubernetes
client to kubesim (the Kubernetes API simulator, tools/kubesim).
"""

from __future__ import annotations

import json
import time

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.okemesh.istio.plugins.doc_fragments.k8s_auth import ModuleDocFragment
from ansible_collections.okemesh.istio.plugins.modules import injection_check


def run_main(capsys, args: dict) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        injection_check.main()
    return json.loads(capsys.readouterr().out)


def test_documented_options_match_the_argument_spec():
    doc = yaml.safe_load(injection_check.DOCUMENTATION)
    options = dict(doc["options"])
    options.update(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"])
    spec = injection_check.argument_spec()
    assert sorted(options) == sorted(spec)
    for name, s in spec.items():
        assert options[name].get("type", "str") == s.get("type", "str"), name
        assert options[name].get("default") == s.get("default"), name
        assert options[name].get("choices") == s.get("choices"), name
        assert options[name].get("aliases", []) == s.get("aliases", []), name
        assert options[name].get("elements") == s.get("elements"), name
    assert {k: v["support"] for k, v in doc["attributes"].items()} == {"check_mode": "full", "diff_mode": "none", "idempotent": "full"}
    yaml.safe_load(injection_check.EXAMPLES)
    yaml.safe_load(injection_check.RETURN)


def seed(sim):
    def post(path, body):
        status, resp = sim.request("POST", path, body)
        assert status == 201, resp

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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"kubeconfig": "/nonexistent/kubeconfig"}, "kubeconfig /nonexistent/kubeconfig does not exist"),  # a path is not a secret
        ({"host": "https://127.0.0.1:9", "api_key": "x", "validate_certs": False, "wait": -1}, "wait must be 0"),
        ({"host": "https://127.0.0.1:9", "api_key": "secret-token", "namespaces": []}, "namespaces is an empty list"),
        ({"host": "http://127.0.0.1:9", "api_key": "secret-token"}, "cannot reach the Kubernetes API"),
    ],
)
def test_main_errors(capsys, args, message):
    out = run_main(capsys, args)
    assert out["failed"] is True and message in out["msg"]
    assert "secret-token" not in json.dumps(out)


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
