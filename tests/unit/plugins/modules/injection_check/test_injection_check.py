"""Entry tests for okemesh.istio.injection_check that need no cluster: the argument spec against the docs,
and option errors reported before any API call (main() run in-process with patch_module_args).
"""

from __future__ import annotations

import json

import pytest
import yaml

from ansible_collections.okemesh.istio.plugins.doc_fragments.k8s_auth import ModuleDocFragment
from ansible_collections.okemesh.istio.plugins.modules import injection_check
from tests.support.modules import run_module


def run_main(capsys, args: dict) -> dict:
    return run_module(injection_check, capsys, args)


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
