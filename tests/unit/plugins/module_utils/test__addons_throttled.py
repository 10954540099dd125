"""The service-proxy transport of the telemetry modules tries a throttled GET again, as client-go does.

A real socket that answers 429 + Retry-After (API Priority and Fairness) before the request is
proxied; the real kubernetes client sends the GETs.
"""

from __future__ import annotations

import pytest

from ansible_collections.okemesh.istio.plugins.module_utils import _addons, _k8s
from ansible_collections.okemesh.istio.plugins.module_utils._errors import AddonError
from tests.support.k8s_stub import ScriptedAPI


@pytest.fixture
def api():
    stub = ScriptedAPI()
    yield stub
    stub.close()


def proxy(api) -> _addons.ServiceProxy:
    client = _k8s.get_api_client({"host": api.url, "api_key": "t0ken"}, environ={})
    return _addons.ServiceProxy(client, "prometheus", "istio-system", "prometheus", "9090", timeout=5)


def test_throttled_get_is_sent_again_after_retry_after(api):
    api.script = [("status", 429, 0), ("status", 429, 0)]
    assert proxy(api).get("/api/v1/query") is not None
    assert api.count("GET") == 3


def test_throttled_for_good_ends_in_a_finding_not_a_loop(api, monkeypatch):
    monkeypatch.setattr(_addons.ServiceProxy, "THROTTLED_RETRIES", 2)
    api.default = ("status", 429, 0)
    with pytest.raises(AddonError):
        proxy(api).get("/api/v1/query")
    assert api.count("GET") == 3


def test_other_errors_are_not_sent_again(api):
    api.script = [("status", 503, None)]
    with pytest.raises(AddonError):
        proxy(api).get("/api/v1/query")
    assert api.count("GET") == 1
