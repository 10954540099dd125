"""The kubeconfig option is no longer no_log as a whole: only the secrets inside are masked.

kubeconfig_secret_values() finds the credentials in an inline kubeconfig; K8sModule registers
them as soon as the parameters are read (so even an argument-spec failure masks them), and
nothing else is masked: ``default`` and ``context`` stay as they are, a path is shown.
"""

from __future__ import annotations

import json

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from tests.support.modules import on_target

from ansible_collections.okemesh.istio.plugins.module_utils import _k8s
from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError, KubernetesError

SECRETS = {
    "token": "tok-3f9a8b7c6d5e",
    "password": "pw-hunter2-xyz",
    "key_data": "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQ==",
    "refresh": "refresh-7c1d2e",
    "env": "env-secret-9911",
    "long_env": "AAAABBBBCCCCDDDDEEEE",
    "arg": "arg-token-5566",
    "arg_eq": "eq-token-7788",
    "proxy": "proxy-pass-3344",
}


def inline_kubeconfig() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "context",
        "clusters": [{"name": "default", "cluster": {
            "server": "https://127.0.0.1:9", "proxy-url": "http://me:%s@proxy:3128" % SECRETS["proxy"]}}],
        "contexts": [{"name": "context", "context": {"cluster": "default", "user": "default", "namespace": "default"}}],
        "users": [
            {"name": "default", "user": {"token": SECRETS["token"]}},
            {"name": "basic", "user": {"username": "admin", "password": SECRETS["password"]}},
            {"name": "cert", "user": {"client-certificate-data": "Q0VSVA==", "client-key-data": SECRETS["key_data"],
                                      "client-key": "/home/me/.kube/key.pem"}},
            {"name": "oidc", "user": {"auth-provider": {"name": "oidc", "config": {
                "client-id": "kubernetes", "refresh-token": SECRETS["refresh"], "idp-issuer-url": "https://idp"}}}},
            {"name": "oke", "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "oci",
                "args": ["ce", "cluster", "generate-token", "--cluster-id", "ocid1.cluster.oc1..aaa", "--region", "eu-frankfurt-1",
                         "--auth", "security_token",
                         "--token", SECRETS["arg"], "--auth-token=%s" % SECRETS["arg_eq"]],
                "env": [{"name": "OCI_CLI_PROFILE", "value": "default"}, {"name": "OCI_CLI_AUTH", "value": "security_token"},
                        {"name": "MY_SECRET", "value": SECRETS["env"]},
                        {"name": "OPAQUE", "value": SECRETS["long_env"]}, {"name": "DEBUG", "value": "1"}]}}},
        ],
    }


def test_secret_values_found_inside_an_inline_kubeconfig():
    found = _k8s.kubeconfig_secret_values(inline_kubeconfig())
    assert found == set(SECRETS.values())
    # names, server URLs, paths, usernames and ordinary exec arguments are not secrets
    assert found.isdisjoint({"default", "context", "admin", "kubernetes", "ce", "--region", "eu-frankfurt-1", "1",
                             "security_token", "/home/me/.kube/key.pem", "https://127.0.0.1:9"})


@pytest.mark.parametrize("value", [
    None, "/home/me/.kube/config", "/a:/b", [], {"users": "nonsense"}, {"users": [None, 1, {"user": 2}]},
    {"users": 1, "clusters": "x"}, {"users": [{"user": {"exec": {"env": 3, "args": "x"}, "auth-provider": {"config": []}}}]},
])
def test_no_secret_values_in_a_path_or_garbage(value):
    assert _k8s.kubeconfig_secret_values(value) == set()


SPEC = dict(_k8s.K8S_AUTH_ARGSPEC, wait=dict(type="int", default=0), note=dict(type="str"))


def run_module(capsys, args, finish=None) -> dict:
    with on_target(), patch_module_args(args), pytest.raises(SystemExit):
        module = _k8s.K8sModule(argument_spec=SPEC)
        finish(module)
    return json.loads(capsys.readouterr().out)


def test_only_the_secrets_are_masked_in_the_result(capsys):
    out = run_module(capsys, {"kubeconfig": inline_kubeconfig(), "note": "default context"},
                     lambda m: m.exit_json(report=["context: default", "namespace default", "token %s" % SECRETS["token"]]))
    text = json.dumps(out)
    for secret in SECRETS.values():
        assert secret not in text
    assert out["report"] == ["context: default", "namespace default", "token ********"]
    echoed = out["invocation"]["module_args"]["kubeconfig"]
    assert echoed["current-context"] == "context" and echoed["users"][0] == {"name": "default", "user": {"token": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}}
    assert echoed["users"][2]["user"]["client-key"] == "/home/me/.kube/key.pem"


def test_an_argument_spec_failure_masks_them_too(capsys):
    out = run_module(capsys, {"kubeconfig": inline_kubeconfig(), "wait": "soon"}, lambda m: m.exit_json())
    assert out["failed"] is True and "wait" in out["msg"]
    text = json.dumps(out)
    for secret in SECRETS.values():
        assert secret not in text


def test_a_path_is_shown(capsys, tmp_path):
    path = str(tmp_path / "nope")

    def finish(module):
        try:
            _k8s.build_configuration(module.params, environ={})
        except InputError as err:
            module.fail_json(**err.fail_kwargs())

    out = run_module(capsys, {"kubeconfig": path}, finish)
    assert out["msg"] == "kubeconfig %s does not exist" % path
    assert out["invocation"]["module_args"]["kubeconfig"] == path
    assert "********" not in json.dumps(out)


def test_api_key_from_the_environment_is_masked(capsys, monkeypatch):
    monkeypatch.setenv("K8S_AUTH_API_KEY", "env-api-key-4455")
    out = run_module(capsys, {}, lambda m: m.exit_json(echo="key env-api-key-4455"))
    assert out["echo"] == "key ********"


def test_api_key_stays_no_log():
    assert _k8s.K8S_AUTH_ARGSPEC["api_key"]["no_log"] is True


# ---------------------------------------------------------------------------------------
# option shapes, checked before anything is loaded
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kubeconfig": ["a", "b"]}, "kubeconfig must be a path (several paths joined with ':') or a kubeconfig as a dictionary, got a list"),
        ({"kubeconfig": 3}, "got a int"),
        ({"kubeconfig": {}}, "kubeconfig is an empty dictionary"),
        ({"host": "not a url"}, "host must be the API server's URL, such as https://api.example.com:6443, got 'not a url'"),
        ({"host": "ftp://x:21"}, "host must be the API server's URL"),
        ({"host": "https://"}, "host must be the API server's URL"),
        ({"host": "https://h:99999"}, "host must be the API server's URL"),
        ({"host": "https://h:6443", "ca_cert": "/nonexistent/ca.pem"}, "ca_cert /nonexistent/ca.pem does not exist or is not a file"),
        ({"host": "https://h:6443", "client_key": "/nonexistent/k"}, "client_key /nonexistent/k does not exist"),
    ],
)
def test_bad_connection_options(params, message):
    with pytest.raises(InputError) as exc:
        _k8s.build_configuration(params, environ={})
    assert message in exc.value.msg


def test_a_broken_kubeconfig_file_error_names_the_line_not_the_content(tmp_path):
    path = tmp_path / "kc"
    path.write_text("apiVersion: v1\nusers:\n- name: u\n  user:\n    token: tok-in-file-1234\n   bad: [\n")
    with pytest.raises(KubernetesError) as exc:
        _k8s.build_configuration({"kubeconfig": str(path)}, environ={})
    assert "tok-in-file-1234" not in exc.value.msg
    assert "line 6" in exc.value.msg and str(path) in exc.value.msg


def test_a_good_inline_kubeconfig_still_loads():
    cfg = _k8s.build_configuration({"kubeconfig": yaml.safe_load(json.dumps(inline_kubeconfig()))}, environ={})
    assert cfg.host == "https://127.0.0.1:9"
