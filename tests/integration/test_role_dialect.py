"""How the five roles resolve the collection-wide variables, and the deprecated names.

One play holds every role; ansible-playbook runs with --tags okemesh_report, so only the role
argument validation, the preflights (tag always) and a report task run: no cluster is needed
(istio_state absent skips the istio preflight's cluster read).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.fixtures.stage_istio_release import staged_for_tests

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "dialect.yml"
RELEASE = staged_for_tests()


def resolve(playbook, tmp_path: Path, **extra) -> tuple[dict, str]:
    extra_vars = {"ansible_python_interpreter": sys.executable, "istio_release_dir": str(RELEASE),
                  "prereqs_kubeconfig": str(tmp_path / "kubeconfig"), "istio_state": "absent",
                  "okemesh_test_output": str(tmp_path / "resolved.json"), **extra}
    result = playbook(PLAYBOOK, extra_vars=extra_vars, tags="okemesh_report")
    assert result.rc == 0, str(result)
    return json.loads((tmp_path / "resolved.json").read_text()), result.stdout + result.stderr


def test_defaults_come_from_the_collection(playbook, tmp_path):
    resolved, output = resolve(playbook, tmp_path)
    assert resolved["versions"] == ["1.30.0"] * 5
    assert resolved["kubectl"] == ["kubectl", "kubectl"]
    assert resolved["helm"] == ["", ""]
    assert resolved["retries"] == [10] * 5
    assert resolved["delays"] == [2] * 5
    assert "DEPRECATION WARNING" not in output


def test_collection_wide_variables_reach_every_role(playbook, tmp_path):
    resolved, _output = resolve(playbook, tmp_path, okemesh_istio_version="1.29.1", okemesh_kubectl_binary="/opt/k8s/kubectl",
                                okemesh_helm_binary="/opt/k8s/helm", okemesh_api_retries=7, okemesh_api_retry_delay=2)
    assert resolved["versions"] == ["1.29.1"] * 5
    assert resolved["kubectl"] == ["/opt/k8s/kubectl"] * 2
    assert resolved["helm"] == ["/opt/k8s/helm"] * 2
    assert resolved["retries"] == [7] * 5
    assert resolved["delays"] == [2] * 5


def test_istio_version_set_alone_is_followed_by_the_other_roles(playbook, tmp_path):
    resolved, _output = resolve(playbook, tmp_path, okemesh_istio_version="1.30.0", istio_version="1.29.0")
    assert resolved["versions"] == ["1.29.0"] * 5


@pytest.mark.parametrize("new_too", [False, True])
def test_deprecated_names_still_work_and_warn(playbook, tmp_path, new_too):
    extra = {"gateway_version": "1.29.0", "gateway_kubectl": "/old/gateway-kubectl", "bookinfo_kubectl": "/old/bookinfo-kubectl"}
    if new_too:  # the new name wins over the old one
        extra.update(gateway_istio_version="1.30.0", gateway_kubectl_binary="/new/kubectl")
    resolved, output = resolve(playbook, tmp_path, **extra)
    assert resolved["versions"][4] == ("1.30.0" if new_too else "1.29.0")
    assert resolved["kubectl"] == ["/old/bookinfo-kubectl", "/new/kubectl" if new_too else "/old/gateway-kubectl"]
    for old, new in (("gateway_version", "gateway_istio_version"), ("gateway_kubectl", "gateway_kubectl_binary"),
                     ("bookinfo_kubectl", "bookinfo_kubectl_binary")):
        assert re.search(rf"\[DEPRECATION WARNING\]: The variable {old} is deprecated; set {new} instead", output), str(output)
    assert "collection 'okemesh.istio' version 0.3.0" in output


def test_bad_retry_values_are_refused_by_the_argument_specs(playbook, tmp_path):
    extra_vars = {"ansible_python_interpreter": sys.executable, "istio_release_dir": str(RELEASE), "istio_state": "absent",
                  "prereqs_kubeconfig": str(tmp_path / "kubeconfig"), "okemesh_api_retries": "many",
                  "okemesh_test_output": str(tmp_path / "resolved.json")}
    result = playbook(PLAYBOOK, extra_vars=extra_vars, tags="okemesh_report")
    assert result.rc != 0
    assert "prereqs_api_retries" in result.stdout and "many" in result.stdout, str(result)
