"""Retries and time limits of plugins/module_utils/_k8s.py, as client-go does them.

The real kubernetes Python client (through _k8s.Kube) talks to ScriptedAPI, a stub on a real
socket that hangs, answers 429/5xx, or resets connections on purpose.  Assertions are on
retry counts, request counts and messages; times are only bounded loosely ("it ends").
"""

from __future__ import annotations

import socket
import time

import pytest

from ansible_collections.okemesh.istio.plugins.module_utils import _k8s
from ansible_collections.okemesh.istio.plugins.module_utils._errors import KubernetesError
from tests.support.k8s_stub import ScriptedAPI

MARGIN = 5.0  # generous: the machine is shared; these bound "it ends", they measure nothing


@pytest.fixture
def api():
    stub = ScriptedAPI()
    yield stub
    stub.close()


def kube(api, deadline=None, **policy) -> _k8s.Kube:
    k = _k8s.Kube(_k8s.get_api_client({"host": api.url, "api_key": "t0ken"}, environ={}), deadline=deadline)
    if policy:
        k.policy = _k8s.RetryPolicy(**policy)
    return k


# ---------------------------------------------------------------------------------------
# reads
# ---------------------------------------------------------------------------------------
def test_an_api_that_never_answers_fails_at_the_deadline(api):
    api.default = ("hang",)
    k = kube(api)
    k.deadline = _k8s.Deadline(1.5, "wait=1")
    start = time.monotonic()
    with pytest.raises(KubernetesError) as exc:
        k.get_json("/api/v1/namespaces")
    assert time.monotonic() - start < 1.5 + MARGIN
    assert exc.value.msg.startswith("GET /api/v1/namespaces: no answer from the Kubernetes API within ")
    assert exc.value.msg.endswith(" s (the time left of wait=1)")
    assert exc.value.details["reason"] == "Timeout" and exc.value.details["retries"] == 0
    assert api.count() == 1  # no hidden urllib3 retry, no retry past the deadline


def test_read_timeouts_are_retried_while_the_deadline_allows(api):
    api.default = ("hang",)
    k = kube(api, _k8s.Deadline(2.5, "wait=2"), request_timeout=0.5, backoff=0.05)
    start = time.monotonic()
    with pytest.raises(KubernetesError) as exc:
        k.get_json("/api/v1/namespaces")
    assert time.monotonic() - start < 2.5 + MARGIN
    assert api.count() >= 2 and k.stats.reasons == {"timeout": api.count() - 1}
    assert exc.value.details["retries"] == api.count() - 1


def test_429_with_retry_after_is_honoured(api):
    api.script = [("status", 429, 1)]
    k = kube(api)
    start = time.monotonic()
    assert k.get_json("/api/v1/namespaces")["kind"] == "List"
    assert time.monotonic() - start >= 0.9  # it waited as the server asked
    assert (api.count(), k.stats.count, k.stats.reasons) == (2, 1, {"429": 1})


def test_retry_after_is_capped(api):
    api.script = [("status", 429, 3600)]
    k = kube(api, retry_after_cap=0.2)
    start = time.monotonic()
    assert k.get_json("/api/v1/namespaces")["kind"] == "List"
    assert time.monotonic() - start < 0.2 + MARGIN
    assert k.stats.count == 1


def test_constant_429_gives_up_after_the_retry_limit(api):
    api.default = ("status", 429, 0)
    k = kube(api)
    with pytest.raises(KubernetesError) as exc:
        k.get_json("/api/v1/pods")
    assert api.count() == 11 and k.stats.count == 10  # client-go's 10 retries
    assert exc.value.details["status"] == 429 and exc.value.details["retries"] == 10
    assert exc.value.msg == "GET /api/v1/pods: HTTP 429 TooManyRequests: the stub answers 429 (after 10 retries)"


def test_constant_429_stops_when_the_next_retry_would_pass_the_deadline(api):
    api.default = ("status", 429, 1)
    k = kube(api, _k8s.Deadline(2.0, "wait=2"))
    start = time.monotonic()
    with pytest.raises(KubernetesError) as exc:
        k.get_json("/api/v1/pods")
    assert time.monotonic() - start < 2.0 + MARGIN
    assert 1 <= k.stats.count <= 2 and api.count() == k.stats.count + 1
    assert exc.value.msg.endswith("; no time is left of wait=2 for another try")


def test_500_n_times_then_200(api):
    api.script = [("status", 500, None)] * 3
    k = kube(api)
    body = k.get_json("/api/v1/namespaces")
    assert body["kind"] == "List"
    assert (api.count(), k.stats.count, k.stats.reasons) == (4, 3, {"500": 3})


def test_5xx_gives_up_after_the_configured_retries(api):
    api.default = ("status", 503, None)
    k = kube(api, retries=2, backoff=0.01)
    with pytest.raises(KubernetesError) as exc:
        k.list("/api/v1/pods")
    assert api.count() == 3 and exc.value.details["retries"] == 2 and exc.value.details["status"] == 503
    assert exc.value.msg.endswith("(after 2 retries)")


@pytest.mark.parametrize("cut", ["reset", "partial"])
def test_connection_resets_on_reads_are_retried(api, cut):
    api.script = [(cut,), (cut,)]
    k = kube(api)
    items, rv = k.list("/api/v1/namespaces")
    assert (items, rv) == ([], "1")
    assert (api.count(), k.stats.count, k.stats.reasons) == (3, 2, {"reset": 2})


def test_a_reset_is_retried_by_us_only(api):
    """urllib3's own retries are off: the stub sees exactly the attempts we count."""
    api.script = [("reset",)]
    k = kube(api, retries=0)
    with pytest.raises(KubernetesError, match="cannot reach the Kubernetes API"):
        k.get_json("/api/v1/namespaces")
    assert api.count() == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_statuses_are_not_retried(api, status):
    api.script = [("status", status, 1)]
    k = kube(api)
    with pytest.raises(KubernetesError) as exc:
        k.get_json("/api/v1/namespaces")
    assert exc.value.details["status"] == status and api.count() == 1 and k.stats.count == 0


def test_a_refused_connection_is_not_retried():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    url = "http://127.0.0.1:%d" % probe.getsockname()[1]
    probe.close()  # bound, never listened: connections to it are refused
    k = _k8s.Kube(_k8s.get_api_client({"host": url, "api_key": "x"}, environ={}))
    start = time.monotonic()
    with pytest.raises(KubernetesError, match="cannot reach the Kubernetes API"):
        k.get_json("/api/v1/pods")
    assert k.stats.count == 0 and time.monotonic() - start < MARGIN


def test_no_request_once_the_deadline_has_passed(api):
    k = kube(api, _k8s.Deadline(0, "wait=0"))
    with pytest.raises(KubernetesError, match=r"^GET /api/v1/pods: not sent, no time is left of wait=0$"):
        k.get_json("/api/v1/pods")
    assert api.count() == 0


# ---------------------------------------------------------------------------------------
# writes: only where it is safe
# ---------------------------------------------------------------------------------------
def test_a_write_is_retried_on_429_only(api):
    api.script = [("status", 429, 0)]
    k = kube(api)
    k.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "x"}})
    assert api.requests == [("POST", "/api/v1/namespaces")] * 2 and k.stats.reasons == {"429": 1}
    for action in [("status", 500, 0), ("status", 503, 0), ("reset",)]:
        api.script = [action]
        api.requests.clear()
        with pytest.raises(KubernetesError):
            k.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "x"}})
        assert api.count() == 1, action  # the server may have processed it: never sent twice


def test_server_side_apply_is_idempotent_and_retried(api):
    api.script = [("status", 503, 0), ("reset",)]
    k = kube(api)
    k.request("PATCH", "/api/v1/namespaces/x", query=[("fieldManager", "okemesh")], body={"metadata": {"name": "x"}},
              content_type="application/apply-patch+yaml")
    assert api.count("PATCH") == 3 and k.stats.reasons == {"503": 1, "reset": 1}


def test_a_caller_may_declare_a_write_idempotent(api):
    api.script = [("status", 502, None)]
    k = kube(api, backoff=0.01)
    k.request("DELETE", "/api/v1/namespaces/x", idempotent=True)
    assert api.count("DELETE") == 2


def test_raw_bytes_for_service_proxy_pages(api):
    k = kube(api)
    data = k.request("GET", "/api/v1/namespaces/istio-system/services/http:grafana:3000/proxy/api/health", decode=False)
    assert isinstance(data, bytes) and b'"kind": "List"' in data


# ---------------------------------------------------------------------------------------
# the helper on its own (no socket): delays, Retry-After forms, counting
# ---------------------------------------------------------------------------------------
class Answer(Exception):
    def __init__(self, status, retry_after=None):
        super().__init__("HTTP %d" % status)
        self.status = status
        self.reason = "X"
        self.body = None
        self.headers = {} if retry_after is None else {"Retry-After": retry_after}


def failing(*errors):
    errors = list(errors)

    def send(timeout):
        assert isinstance(timeout, tuple) and len(timeout) == 2 and all(t > 0 for t in timeout)
        if errors:
            raise errors.pop(0)
        return "done"

    return send


def test_backoff_doubles_up_to_its_cap():
    slept = []
    stats = _k8s.RetryStats()
    result = _k8s.call_with_retry(failing(*[Answer(500)] * 6), "GET /x", stats=stats, sleep=slept.append)
    assert result == "done" and stats.count == 6 and stats.reasons == {"500": 6}
    assert slept == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


@pytest.mark.parametrize(("header", "delay"), [("3", 3.0), ("0", 0.0), ("2.5", 2.5), ("999", 10.0), ("soon", 0.2)])
def test_retry_after_forms(header, delay):
    slept = []
    _k8s.call_with_retry(failing(Answer(429, header)), "GET /x", sleep=slept.append)
    assert slept == [delay]


def test_retry_after_as_an_http_date():
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 4))
    slept = []
    _k8s.call_with_retry(failing(Answer(503, when)), "GET /x", sleep=slept.append)
    assert 2.0 < slept[0] <= 4.0


def test_request_timeouts_are_cut_to_the_deadline():
    seen = []

    def send(timeout):
        seen.append(timeout)
        return "ok"

    _k8s.call_with_retry(send, "GET /x", deadline=_k8s.Deadline(3.0))
    _k8s.call_with_retry(send, "GET /x", policy=_k8s.RetryPolicy(request_timeout=7, connect_timeout=2))
    assert 2.5 < seen[0][0] <= 3.0 and 2.5 < seen[0][1] <= 3.0
    assert seen[1] == (2.0, 7.0)


# ---------------------------------------------------------------------------------------
# the cache: LISTs in parallel end at the deadline too
# ---------------------------------------------------------------------------------------
def test_cache_lists_end_at_the_deadline_and_count_retries(api):
    api.script = [("status", 500, None)]
    k = kube(api)
    cache = _k8s.Cache(k, [{"key": "a", "path": "/api/v1/namespaces"}, {"key": "b", "path": "/api/v1/pods"}])
    cache.list_all()
    assert cache.api_retries == 1
    api.default = ("hang",)
    k.deadline = _k8s.Deadline(1.0, "wait=1")
    start = time.monotonic()
    with pytest.raises(KubernetesError, match="no answer from the Kubernetes API"):
        _k8s.Cache(k, [{"key": "a", "path": "/api/v1/namespaces"}, {"key": "b", "path": "/api/v1/pods"}]).list_all()
    assert time.monotonic() - start < 1.0 + MARGIN
