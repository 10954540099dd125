"""Unit tests for plugins/filter/okemesh.py: the filters the roles read the shared data with."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.okemesh.istio.plugins.filter import okemesh
from ansible_collections.okemesh.istio.plugins.module_utils import _support


def test_filters_are_registered():
    assert set(okemesh.FilterModule().filters()) == {"support", "kubernetes_supported", "api_transient", "deprecated_names"}


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
