"""injection_check under careless and hostile input, and against an API in a bad moment.

Every bad option gets a clean message naming what to fix (no traceback, no secret in the
result).  Against ScriptedAPI (a stub on a real socket: never answers, 429, 5xx, resets) the
whole run ends within ``wait`` (loosely bounded: these are not performance assertions) and
the result counts the API retries.
"""

from __future__ import annotations

import json
import time

import pytest

from ansible_collections.okemesh.istio.plugins.modules import injection_check
from tests.support.modules import run_module
from tests.support.k8s_stub import ScriptedAPI

SECRET = "s3cret-token-8f2e"
MARGIN = 6.0  # generous: "it ends", not "it is fast"


def run_main(capsys, args: dict) -> dict:
    return run_module(injection_check, capsys, args)


def assert_clean_failure(out: dict, message: str) -> None:
    text = json.dumps(out)
    assert out["failed"] is True, out
    assert message in out["msg"], out["msg"]
    assert "Traceback" not in text and "exception" not in out
    assert SECRET not in text


BASE = {"host": "http://127.0.0.1:9", "api_key": SECRET}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"wait": 1000000000000}, "wait must be 0 (check once) or a number of seconds up to 86400 (a day), got 1000000000000"),
        ({"wait": -1}, "wait must be 0 (check once) or a number of seconds up to 86400 (a day), got -1"),
        ({"wait": 86401}, "got 86401"),
        ({"wait": "soon"}, "wait"),
        ({"wait": 2.5}, "wait"),
        ({"namespaces": []}, "namespaces is an empty list: name at least one namespace, or omit the option"),
        ({"namespaces": ["Bookinfo"]}, "namespaces: 'Bookinfo' is not a namespace name"),
        ({"namespaces": ["bookinfo", "a/b"]}, "namespaces: 'a/b' is not a namespace name"),
        ({"namespaces": ["../../apis"]}, "is not a namespace name"),
        ({"namespaces": [""]}, "namespaces: '' is not a namespace name"),
        ({"namespaces": ["x" * 64]}, "at most 63 characters"),
        ({"istio_namespace": ""}, "istio_namespace: '' is not a namespace name"),
        ({"istio_namespace": "istio system"}, "istio_namespace: 'istio system' is not a namespace name"),
        ({"revision": "canary 1"}, "revision: 'canary 1' is not a revision or tag name"),
        ({"revision": ""}, "revision: '' is not a revision or tag name"),
        ({"proxy_version": "1.28 .0"}, "proxy_version: '1.28 .0' is not a version"),
        ({"label_selector": ""}, "label_selector: '' is not a label selector"),
        ({"label_selector": "app=x\nfoo"}, "is not a label selector"),
        ({"fail_on": "sometimes"}, "fail_on"),
        ({"pod_details": "some"}, "pod_details"),
        ({"no_such_option": 1}, "no_such_option"),
        ({"host": "not a url"}, "host must be the API server's URL, such as https://api.example.com:6443, got 'not a url'"),
        ({"kubeconfig": ["a"]}, "kubeconfig must be a path"),
        ({"kubeconfig": {}}, "kubeconfig is an empty dictionary"),
        ({"kubeconfig": {"users": 1}}, "could not load the Kubernetes client configuration (kubeconfig <dict>"),
        ({"ca_cert": "/nonexistent/ca.pem"}, "ca_cert /nonexistent/ca.pem does not exist"),
    ],
)
def test_bad_option(capsys, args, message):
    out = run_main(capsys, dict(BASE, **args))
    assert_clean_failure(out, message)


def test_a_missing_kubeconfig_path_is_named(capsys, tmp_path):
    path = str(tmp_path / "gone" / "kubeconfig")
    out = run_main(capsys, {"kubeconfig": path})
    assert_clean_failure(out, "kubeconfig %s does not exist" % path)
    assert "********" not in json.dumps(out)


# ---------------------------------------------------------------------------------------
# against a misbehaving API
# ---------------------------------------------------------------------------------------
@pytest.fixture
def api():
    stub = ScriptedAPI()
    yield stub
    stub.close()


def test_an_api_that_never_answers_fails_within_wait(capsys, api):
    api.default = ("hang",)
    start = time.monotonic()
    out = run_main(capsys, {"host": api.url, "api_key": SECRET, "wait": 2})
    assert time.monotonic() - start < 2 + MARGIN  # was about 120 s: timeouts and urllib3 retries nested
    assert_clean_failure(out, "no answer from the Kubernetes API within")
    assert out["msg"].endswith("(the time left of wait=2)")
    assert out["api_retries"] == 0


def test_constant_429_fails_within_wait(capsys, api):
    api.default = ("status", 429, 1)
    start = time.monotonic()
    out = run_main(capsys, {"host": api.url, "api_key": SECRET, "wait": 2})
    assert time.monotonic() - start < 2 + MARGIN  # was 45 s
    assert_clean_failure(out, "HTTP 429 TooManyRequests")
    assert out["msg"].endswith("; no time is left of wait=2 for another try")
    assert out["api_retries"] >= 1 and out["status"] == 429


def test_constant_429_without_wait_gives_up_after_the_retry_limit(capsys, api):
    api.default = ("status", 429, 0)
    out = run_main(capsys, {"host": api.url, "api_key": SECRET})
    assert_clean_failure(out, "(after 10 retries)")
    assert out["api_retries"] >= 10


def test_transient_5xx_and_resets_are_retried_and_counted(capsys, api):
    api.script = [("status", 500, None), ("status", 503, 1), ("reset",), ("partial",)]
    out = run_main(capsys, {"host": api.url, "api_key": SECRET, "fail_on": "never"})
    assert "failed" not in out
    assert out["stats"]["api_retries"] == 4
    assert out["stats"]["api_retry_reasons"] == {"500": 1, "503": 1, "reset": 2}
    assert out["stats"]["lists"] == 7 and api.count() == 7 + 4


def test_inline_kubeconfig_masks_its_secrets_and_nothing_else(capsys, api):
    api.collections["/api/v1/namespaces"] = [{"metadata": {"name": "bookinfo", "labels": {"istio-injection": "enabled"}}}]
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "context",
        "clusters": [{"name": "default", "cluster": {"server": api.url}}],
        "contexts": [{"name": "context", "context": {"cluster": "default", "user": "default"}}],
        "users": [{"name": "default", "user": {"token": SECRET}}],
    }
    out = run_main(capsys, {"kubeconfig": kubeconfig, "fail_on": "never"})
    text = json.dumps(out)
    assert SECRET not in text
    assert "********" not in text.replace('"VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"', "")
    assert "conte" + "********" not in text
    assert "√ bookinfo: sidecar injection, revision default (istio-injection=enabled)" in out["report_lines"]
    assert out["invocation"]["module_args"]["kubeconfig"]["current-context"] == "context"
