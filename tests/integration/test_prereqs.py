"""The prereqs role against kubesim (Kubernetes API simulator) and the OCI Container Engine stub.

Real ansible-playbook, kubernetes.core, kubectl; cluster state is read back with kubectl.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.oci_stub.identity import CLUSTER
from tests.support import kubectl_rc_json

pytestmark = pytest.mark.slow

PLAYBOOK = Path(__file__).parent / "playbooks" / "prereqs.yml"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
USER_OCID = "ocid1.user.oc1..aaaaaaaaadminuser000000000000000000000000000000000000"


def base_vars(tmp_path, **extra):
    v = {"prereqs_install_dir": str(tmp_path / "bin"), "prereqs_test_facts_file": str(tmp_path / "facts.json"),
         "ansible_python_interpreter": sys.executable}  # the venv: oci SDK, kubernetes client
    v.update(extra)
    return v


def facts(tmp_path):
    return json.loads((tmp_path / "facts.json").read_text())


def test_existing_kubeconfig_binding_idempotent_and_check_mode(playbook, kubesim, tmp_path):
    ev = base_vars(tmp_path, prereqs_kubeconfig=kubesim.kubeconfig, prereqs_context=kubesim.context,
                   prereqs_cluster_admin_binding=True, prereqs_cluster_admin_user="alice@example.com")
    result = playbook(PLAYBOOK, extra_vars=ev)
    assert result.rc == 0, str(result)
    f = facts(tmp_path)
    assert f["okemesh_kubeconfig"] == kubesim.kubeconfig and f["okemesh_context"] == kubesim.context
    assert f["okemesh_kubernetes_version"] == kubesim.settings()["kubernetes_version"]
    assert f["okemesh_kubernetes_version_of"] == {"kubeconfig": kubesim.kubeconfig, "context": kubesim.context}
    assert f["okemesh_kubectl_binary"] == "kubectl" and f["okemesh_helm_binary"] == "helm"  # the venv's pinned ones, on PATH
    assert f["okemesh_oci_binary"] == ""  # not needed without OKE
    rc, crb = kubectl_rc_json(kubesim, "get", "clusterrolebinding", "okemesh-cluster-admin")
    assert rc == 0, str(crb)
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}
    assert crb["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice@example.com"}]
    assert result.changed() == 1  # the binding
    again = playbook(PLAYBOOK, extra_vars=ev)
    assert again.rc == 0 and again.changed() == 0, str(again)
    check = playbook(PLAYBOOK, extra_vars=dict(ev, prereqs_cluster_admin_binding_name="second-admin"), check=True)
    assert check.rc == 0 and check.changed() == 1, str(check)
    rc, _body = kubectl_rc_json(kubesim, "get", "clusterrolebinding", "second-admin")
    assert rc != 0


def test_unsupported_kubernetes_version_fails_clearly(playbook, kubesim, tmp_path):
    kubesim.settings(kubernetes_version="v1.29.4")
    result = playbook(PLAYBOOK, extra_vars=base_vars(tmp_path, prereqs_kubeconfig=kubesim.kubeconfig, prereqs_istio_version="1.30.1"))
    assert result.rc != 0
    assert "The cluster runs Kubernetes v1.29.4; Istio 1.30.1 supports 1.32 to 1.36" in result.stdout, str(result)
    ok = playbook(PLAYBOOK, extra_vars=base_vars(tmp_path, prereqs_kubeconfig=kubesim.kubeconfig, prereqs_istio_version="1.30.1",
                                                 prereqs_kubernetes_supported={"min": "1.28", "max": "1.30"}))
    assert ok.rc == 0, str(ok)


def test_unknown_context_and_missing_kubeconfig(playbook, kubesim, tmp_path):
    result = playbook(PLAYBOOK, extra_vars=base_vars(tmp_path, prereqs_kubeconfig=kubesim.kubeconfig, prereqs_context="prod"))
    assert result.rc != 0 and f"context 'prod' is not in {kubesim.kubeconfig} (contexts: {kubesim.context})" in result.stdout, str(result)
    result = playbook(PLAYBOOK, extra_vars=base_vars(tmp_path, prereqs_kubeconfig=str(tmp_path / "none")))
    assert result.rc != 0 and f"kubeconfig {tmp_path / 'none'} cannot be read" in result.stdout, str(result)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"prereqs_cluster_id": "cluster-1"}, "prereqs_cluster_id must be an OKE cluster OCID"),
        ({"prereqs_helm_version": "4.0.0"}, "prereqs_helm_version a helm 3 release"),
        ({"prereqs_cluster_admin_binding": True}, "set prereqs_cluster_admin_user"),
        ({"prereqs_istio_version": "1.12.0"}, "no supported Kubernetes range is known for Istio 1.12.0"),
    ],
)
def test_preflight_messages(playbook, tmp_path, bad, message):
    result = playbook(PLAYBOOK, extra_vars=base_vars(tmp_path, **bad), tags="prereqs_preflight")
    assert result.rc != 0 and message in result.stdout, str(result)


# --- tool installs from a local archive ---------------------------------------------------------
def fake_kubectl_archive(path: Path, version: str) -> str:
    script = f'#!/bin/sh\necho \'{{"clientVersion": {{"gitVersion": "v{version}"}}}}\'\n'.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("kubernetes/client/bin/kubectl")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def tool_vars(tmp_path, archive, sha):
    return base_vars(tmp_path, prereqs_kubectl_version="1.99.3", prereqs_kubectl_src=str(archive), prereqs_kubectl_sha256=sha,
                     prereqs_kubectl_archive_member="kubernetes/client/bin/kubectl")


def test_install_from_local_archive_verified_and_idempotent(playbook, tmp_path):
    archive = tmp_path / "kubectl.tar.gz"
    sha = fake_kubectl_archive(archive, "1.99.3")
    ev = tool_vars(tmp_path, archive, sha)
    check = playbook(PLAYBOOK, extra_vars=ev, tags="prereqs_tools", check=True)
    assert check.rc == 0 and check.changed() == 1 and not (tmp_path / "bin").exists(), str(check)
    result = playbook(PLAYBOOK, extra_vars=ev, tags="prereqs_tools")
    assert result.rc == 0, str(result)
    installed = tmp_path / "bin" / "kubectl"
    assert stat.S_IMODE(installed.stat().st_mode) == 0o755
    assert json.loads(subprocess.run([str(installed)], capture_output=True, text=True, check=False).stdout)["clientVersion"]["gitVersion"] == "v1.99.3"
    assert facts(tmp_path)["okemesh_kubectl_binary"] == str(installed)
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("okemesh-prereqs-*"))  # temp dir removed
    again = playbook(PLAYBOOK, extra_vars=ev, tags="prereqs_tools")
    assert again.rc == 0 and again.changed() == 0, str(again)


def test_sha256_mismatch_installs_nothing(playbook, tmp_path):
    archive = tmp_path / "kubectl.tar.gz"
    fake_kubectl_archive(archive, "1.99.3")
    wrong = "0" * 64
    result = playbook(PLAYBOOK, extra_vars=tool_vars(tmp_path, archive, wrong), tags="prereqs_tools")
    assert result.rc != 0
    assert f"sha256 mismatch for {archive}: expected {wrong}" in result.stdout and "Nothing was installed" in result.stdout, str(result)
    assert not (tmp_path / "bin" / "kubectl").exists()


def test_wrong_version_in_archive_installs_nothing(playbook, tmp_path):
    archive = tmp_path / "kubectl.tar.gz"
    sha = fake_kubectl_archive(archive, "1.98.0")
    result = playbook(PLAYBOOK, extra_vars=tool_vars(tmp_path, archive, sha), tags="prereqs_tools")
    assert result.rc != 0 and "version of the candidate" in result.stdout, str(result)
    assert not (tmp_path / "bin" / "kubectl").exists()


def test_missing_tool_without_artifact_is_explained(playbook, tmp_path):
    result = playbook(PLAYBOOK, extra_vars=base_vars(tmp_path, prereqs_kubectl_version="1.99.3", prereqs_kubectl_url=""), tags="prereqs_tools")
    assert result.rc != 0 and "kubectl 1.99.3 is needed but not found (found: 1.33.0 at" in result.stdout, str(result)
    assert "Set prereqs_kubectl_src (a local file) or _url" in result.stdout


# --- OKE: kubeconfig through oke_kubeconfig and the stub -----------------------------------------
def test_oke_kubeconfig_written_and_idempotent(playbook, tmp_path, oci_stub, oci_identity):
    dest = tmp_path / "kube" / "config"
    ev = base_vars(tmp_path, prereqs_cluster_id=CLUSTER, prereqs_kubeconfig=str(dest), prereqs_context="oke-test",
                   prereqs_oci_config_file=str(oci_identity.config_file), prereqs_oci_service_endpoint=oci_stub.url)
    result = playbook(PLAYBOOK, extra_vars=ev, tags="prereqs_tools,prereqs_kubeconfig")
    assert result.rc == 0, str(result)
    doc = yaml.safe_load(dest.read_text())
    assert doc["current-context"] == "oke-test" and doc["clusters"][0]["cluster"]["server"] == "https://203.0.113.10:6443"
    assert doc["users"][0]["user"]["exec"]["args"][-2:] == ["--config-file", str(oci_identity.config_file)]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    f = facts(tmp_path)
    assert f["okemesh_kubeconfig"] == str(dest) and f["okemesh_context"] == "oke-test"
    assert f["okemesh_oci_binary"] == "oci"  # the exec credential needs the CLI: found on PATH at the pin
    again = playbook(PLAYBOOK, extra_vars=ev, tags="prereqs_tools,prereqs_kubeconfig")
    assert again.rc == 0 and again.changed() == 0, str(again)
    assert [r["status"] for r in oci_stub.requests] == [200, 200]
