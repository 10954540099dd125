"""Unit tests for plugins/module_utils/_support.py: the support matrix, the shared choices, and
which registered results count as transient API errors.

The error texts are the shapes kubernetes.core 6.2 (Python client), helm 3 and kubectl
(client-go) produce; tests/integration/test_role_retries.py checks the real ones end to end.
"""

from __future__ import annotations

import pytest

from ansible_collections.okemesh.istio.plugins.module_utils import _oci, _support


def test_matrix_has_the_published_ranges():
    # istio.io "Supported Releases": 1.30 -> 1.32-1.36, 1.29 -> 1.31-1.35, 1.28 -> 1.30-1.34, 1.27 -> 1.29-1.33
    assert _support.kubernetes_range("1.30.0") == {"min": "1.32", "max": "1.36"}
    assert _support.kubernetes_range("v1.29.3") == {"min": "1.31", "max": "1.35"}
    assert _support.kubernetes_range("1.28.1") == {"min": "1.30", "max": "1.34"}
    assert _support.kubernetes_range("1.27.0-beta.1") == {"min": "1.29", "max": "1.33"}
    assert _support.kubernetes_range("1.12.0") == {}
    assert _support.kubernetes_range("") == {}
    assert _support.kubernetes_range(None) == {}


def test_range_is_a_copy():
    r = _support.kubernetes_range("1.30.0")
    r["min"] = "0.1"
    assert _support.ISTIO_KUBERNETES["1.30"]["min"] == "1.32"


def test_default_version_is_in_the_matrix():
    assert _support.kubernetes_range(_support.DEFAULT_ISTIO_VERSION)


def test_oke_choices_match_the_module_argspec():
    # _oci.py keeps its own lists for the module argspec until it imports them from _support.py
    assert _oci.ENDPOINTS == _support.OKE_ENDPOINTS
    assert _oci.AUTH_TYPES == _support.OCI_AUTH_TYPES


TRANSIENT = [
    # kubernetes.core k8s: a Status body quoted in msg, reason from the ApiException
    {"failed": True, "msg": 'Failed to apply object: b\'{"kind":"Status","apiVersion":"v1","status":"Failure",'
     '"message":"Internal error occurred: kubesim injected fault","reason":"InternalError","code":500}\\n\'',
     "reason": "Internal Server Error"},
    {"failed": True, "msg": 'Failed to create object: b\'{"kind":"Status","reason":"TooManyRequests","code":429}\'',
     "reason": "Too Many Requests"},
    {"failed": True, "status": 503, "msg": "Failed to retrieve requested object"},
    {"failed": True, "error": 504, "msg": "Failed to patch object"},
    # the Python client's ApiException text
    {"failed": True, "msg": "Exception (502)\nReason: Bad Gateway\nHTTP response headers: ..."},
    # connection errors (urllib3)
    {"failed": True, "msg": "Failed to get client due to HTTPSConnectionPool(host='127.0.0.1', port=6443): Max retries "
     "exceeded with url: /version (Caused by NewConnectionError(': Failed to establish a new connection: "
     "[Errno 111] Connection refused'))"},
    {"failed": True, "msg": "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))"},
    # helm (client-go) through kubernetes.core.helm
    {"failed": True, "msg": "Failure when executing Helm command. Exited 1.", "stderr":
     "Error: INSTALLATION FAILED: the server is currently unable to handle the request (post secrets)"},
    {"failed": True, "msg": "Failure when executing Helm command. Exited 1.", "stderr":
     'Error: UPGRADE FAILED: an error on the server ("") has prevented the request from succeeding (get secrets)'},
    {"failed": True, "msg": "Failure when executing Helm command. Exited 1.", "stderr":
     "Error: Kubernetes cluster unreachable: Get \"https://10.0.0.1:6443/version\": dial tcp: i/o timeout"},
    # kubectl
    {"failed": True, "rc": 1, "stderr": "Error from server (InternalError): Internal error occurred: etcd"},
    {"failed": True, "rc": 1, "stderr": "Error from server (TooManyRequests): the server has received too many requests"},
    {"failed": True, "rc": 1, "stderr": "Unable to connect to the server: net/http: TLS handshake timeout"},
    # a 500 met inside kubernetes.core's waiter escapes as the module's exception; with failed_when
    # turning the failure off, ansible-core 2.19 keeps its traceback apart (-vvv) ...
    {"failed": False, "failed_when_result": False, "failed_when_suppressed_exception": "Traceback (most recent call last):\n"
     "...\nkubernetes.dynamic.exceptions.InternalServerError: 500\nReason: Internal Server Error\n"},
    # ... and below -vvv not even that: only a placeholder
    {"failed": False, "failed_when_result": False, "failed_when_suppressed_exception": "(traceback unavailable)"},
    # older ansible-core: the traceback string
    {"failed": True, "msg": "MODULE FAILURE", "exception": "Traceback (most recent call last):\n ...\n"
     "kubernetes.dynamic.exceptions.InternalServerError: 500\nReason: Internal Server Error\n"},
]

NOT_TRANSIENT = [
    # a real error: 422 Invalid, even when its text mentions an internal error
    {"failed": True, "msg": 'Failed to create object: b\'{"kind":"Status","message":"Namespace \\"Bad_NS\\" is invalid",'
     '"reason":"Invalid","code":422}\'', "reason": "Unprocessable Entity"},
    {"failed": True, "status": 422, "msg": "Internal error occurred: quoted by a webhook"},
    {"failed": True, "msg": 'Failed to retrieve requested object: b\'{"reason":"Forbidden","code":403}\''},
    {"failed": True, "msg": 'Failed to patch object: b\'{"reason":"NotFound","code":404}\''},
    {"failed": True, "msg": "Failed to find exact match for networking.istio.io/v1.Gateway by [kind, name, singularName, shortNames]"},
    {"failed": True, "msg": "Failure when executing Helm command. Exited 1.", "stderr":
     "Error: INSTALLATION FAILED: cannot re-use a name that is still in use"},
    {"failed": True, "rc": 1, "stderr": 'error: the server doesn\'t have a resource type "virtualservices"'},
    {"failed": True, "msg": "Failed to gather information about Deployment(s) even after waiting for 300 seconds"},
    {"failed": False, "failed_when_result": False, "failed_when_suppressed_exception":
     "Traceback (most recent call last):\n...\nAttributeError: 'NoneType' object has no attribute 'get'\n"},
    {"failed": False, "failed_when_result": False, "msg": "a message", "failed_when_suppressed_exception": "(traceback unavailable)"},
    {"failed": True, "msg": "MODULE FAILURE", "exception": "(traceback unavailable)"},
    # successes, and what is not a result
    {"changed": False, "resources": []},
    {"changed": True, "status": {"status": "deployed", "name": "istiod"}, "stderr": ""},
    {"status": 200},
    {},
    None,
    "Internal error occurred",
]


@pytest.mark.parametrize("result", TRANSIENT, ids=range(len(TRANSIENT)))
def test_transient_errors(result):
    assert _support.is_transient(result) is True


@pytest.mark.parametrize("result", NOT_TRANSIENT, ids=range(len(NOT_TRANSIENT)))
def test_errors_a_retry_cannot_cure(result):
    assert _support.is_transient(result) is False
