"""Unit tests for plugins/filter/okemesh.py: the filters the roles read the shared data with."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.okemesh.istio.plugins.filter import okemesh
from ansible_collections.okemesh.istio.plugins.module_utils import _support


def test_filters_are_registered():
    assert set(okemesh.FilterModule().filters()) == {
        "support", "kubernetes_supported", "api_transient", "api_failed_definitions", "helm_busy", "deprecated_names"}


def test_support_returns_copies_of_the_shared_data():
    endpoints = okemesh.support("oke_endpoints")
    assert endpoints == ["PUBLIC_ENDPOINT", "PRIVATE_ENDPOINT", "VCN_HOSTNAME", "LEGACY_KUBERNETES"]
    endpoints.append("X")
    matrix = okemesh.support("istio_kubernetes")
    matrix["1.30"]["min"] = "0"
    assert _support.OKE_ENDPOINTS[-1] == "LEGACY_KUBERNETES"
    assert _support.ISTIO_KUBERNETES["1.30"]["min"] == "1.32"
    assert okemesh.support("default_istio_version") == _support.DEFAULT_ISTIO_VERSION
    assert okemesh.support("default_api_retries") == 10
    assert okemesh.support("default_api_retry_delay") == 2
    assert okemesh.support("default_helm_retries") == 30


def test_support_names_the_known_keys_on_a_typo():
    with pytest.raises(AnsibleFilterError, match="unknown name 'oke_endpoint'.*oke_endpoints"):
        okemesh.support("oke_endpoint")


def test_kubernetes_supported():
    assert okemesh.kubernetes_supported("1.29.0") == {"min": "1.31", "max": "1.35"}
    assert okemesh.kubernetes_supported("2.0.0") == {}


def test_deprecated_names_warns_for_each_old_name_in_use(monkeypatch):
    calls = []
    monkeypatch.setattr(okemesh.display, "deprecated", lambda msg, **kw: calls.append((msg, kw)))
    renames = {"gateway_version": "gateway_istio_version", "gateway_kubectl": "gateway_kubectl_binary"}
    assert okemesh.deprecated_names(renames, ["gateway_kubectl", "gateway_state"]) == ["gateway_kubectl -> gateway_kubectl_binary"]
    assert len(calls) == 1
    msg, kw = calls[0]
    assert "gateway_kubectl is deprecated; set gateway_kubectl_binary" in msg
    assert kw == {"version": okemesh.REMOVAL_VERSION, "collection_name": "okemesh.istio"}
    assert okemesh.deprecated_names(renames, []) == []
    assert len(calls) == 1


def test_deprecated_names_needs_a_mapping():
    with pytest.raises(AnsibleFilterError, match="mapping of old to new names"):
        okemesh.deprecated_names(["gateway_version"], ["gateway_version"])


# what kubernetes.core.helm returns when helm refuses a release with a pending operation
HELM_BUSY = {
    "failed": True,
    "msg": "Failure when executing Helm command. Exited 1.\nstdout: \nstderr: Error: UPGRADE FAILED: another operation "
           "(install/upgrade/rollback) is in progress\n",
    "stderr": "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress\n",
    "command": "helm upgrade -i --reset-values istio-base /charts/base",
}


def test_helm_busy_tells_a_pending_release_from_other_failures():
    assert okemesh.helm_busy(HELM_BUSY) is True
    assert okemesh.helm_busy({"failed": True, "stderr": HELM_BUSY["stderr"]}) is True
    # an uninstall interrupted before it deleted the release record left it "uninstalling"
    assert okemesh.helm_busy({"failed": True, "stderr": 'Error: UPGRADE FAILED: "istio-base" has no deployed releases\n'}) is True
    # a transient API error, a real error, a success, a skipped task, no result at all
    api_error = "Error: UPGRADE FAILED: could not get information about the resource: Internal error occurred: etcd"
    assert okemesh.helm_busy({"failed": True, "stderr": api_error}) is False
    assert okemesh.helm_busy({"failed": True, "msg": "Error: INSTALLATION FAILED: cannot re-use a name that is still in use"}) is False
    assert okemesh.helm_busy({"changed": True, "status": {"status": "deployed"}}) is False
    assert okemesh.helm_busy({"skipped": True}) is False
    assert okemesh.helm_busy(None) is False
    # a pending release is no API error: a retry of the same helm call cannot cure it
    assert okemesh.api_transient(HELM_BUSY) is False


DEFS = [
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "prometheus"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "prometheus"}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "prometheus"}},
]
ERROR_500 = {"msg": 'Failed to apply object: b\'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Internal error '
                    'occurred: etcdserver: leader changed","reason":"InternalError","code":500}\'',
             "reason": "Internal Server Error"}


def test_api_failed_definitions_picks_the_objects_whose_apply_failed_in_order():
    # kubernetes.core.k8s with continue_on_error and several definitions: one result each, in order
    result = {"changed": True, "result": {"results": [
        {"changed": False, "result": {}, "error": ERROR_500},
        {"changed": True, "result": {"kind": "ConfigMap"}},
        {"changed": False, "result": {}, "error": {"msg": "Failed to apply object: 422 Invalid", "reason": "Unprocessable Entity"}},
    ]}}
    assert okemesh.api_failed_definitions(result, DEFS) == [DEFS[0], DEFS[2]]
    ok = {"changed": False, "result": {"results": [{"changed": False, "result": {}} for definition in DEFS]}}
    assert okemesh.api_failed_definitions(ok, DEFS) == []


def test_api_failed_definitions_with_one_definition_reads_the_result_itself():
    # one definition: kubernetes.core.k8s returns that object's result, error and all, as the task result
    assert okemesh.api_failed_definitions({"changed": False, "result": {}, "error": ERROR_500}, DEFS[:1]) == DEFS[:1]
    assert okemesh.api_failed_definitions({"changed": True, "result": {"kind": "ServiceAccount"}}, DEFS[:1]) == []


@pytest.mark.parametrize("result", [
    {"skipped": True, "changed": False},  # the apply did not run
    {"failed": True, "msg": "Failed to load resource definition"},  # the whole task failed
    {"changed": True, "result": {"results": [{"error": ERROR_500}]}},  # not one result per definition
    None,
])
def test_api_failed_definitions_is_empty_without_one_result_per_definition(result):
    assert okemesh.api_failed_definitions(result, DEFS) == []
