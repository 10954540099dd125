"""The real helm 3 binary against kubesim: install, upgrade, rollback-free uninstall (release Secrets are protobuf)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest

from kubesim.testing import helm, kubectl_json

CHART = Path(__file__).parent / "testdata" / "chart"
pytestmark = pytest.mark.kubesim(behaviour=False)


def _release(ks, revision: int) -> dict:
    sec = kubectl_json(ks, "get", "secret", f"sh.helm.release.v1.demo.v{revision}", "-n", "apps")
    assert sec["type"] == "helm.sh/release.v1"
    assert sec["metadata"]["labels"]["owner"] == "helm" and sec["metadata"]["labels"]["version"] == str(revision)
    payload = base64.b64decode(base64.b64decode(sec["data"]["release"]))
    return json.loads(gzip.decompress(payload))


def test_helm_install_upgrade_uninstall(kubesim):
    out = helm(kubesim, "install", "demo", str(CHART), "-n", "apps", "--create-namespace", "--set", "message=one")
    assert "STATUS: deployed" in out.stdout
    assert kubectl_json(kubesim, "get", "cm", "demo-config", "-n", "apps")["data"] == {"message": "one"}
    assert _release(kubesim, 1)["info"]["status"] == "deployed"

    helm(kubesim, "upgrade", "demo", str(CHART), "-n", "apps", "--set", "message=two", "--set", "replicas=3", "--set", "port=8080")
    assert kubectl_json(kubesim, "get", "cm", "demo-config", "-n", "apps")["data"] == {"message": "two"}
    dep = kubectl_json(kubesim, "get", "deploy", "demo-web", "-n", "apps")
    assert dep["spec"]["replicas"] == 3 and dep["metadata"]["generation"] == 2
    svc = kubectl_json(kubesim, "get", "svc", "demo-web", "-n", "apps")
    assert [p["port"] for p in svc["spec"]["ports"]] == [8080]
    assert _release(kubesim, 1)["info"]["status"] == "superseded"
    assert _release(kubesim, 2)["info"]["status"] == "deployed"
    listing = json.loads(helm(kubesim, "list", "-n", "apps", "-o", "json").stdout)
    assert [(r["name"], r["revision"], r["status"]) for r in listing] == [("demo", "2", "deployed")]

    helm(kubesim, "uninstall", "demo", "-n", "apps")
    left = kubectl_json(kubesim, "get", "cm,svc,deploy,secret", "-n", "apps")["items"]
    assert [i["metadata"]["name"] for i in left if i["kind"] != "ServiceAccount"] == ["kube-root-ca.crt"]   # the cluster's, not helm's
    assert json.loads(helm(kubesim, "list", "-A", "-o", "json").stdout) == []
