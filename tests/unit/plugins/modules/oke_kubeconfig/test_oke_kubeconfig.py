"""okemesh.istio.oke_kubeconfig, run through its main() with the real OCI SDK against tests/oci_stub.

The comparison tests also run the real `oci ce cluster create-kubeconfig` (oci-cli) against the
same stub and assert the same kubeconfig content.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.oci_stub.identity import CLUSTER, make_identity

# The comparison with the CLI is part of the contract: oci-cli is in requirements-dev.txt, so a
# missing CLI fails these tests (with this message) rather than skipping them.
OCI_CLI = shutil.which("oci", path=str(Path(sys.executable).parent)) or shutil.which("oci") or "oci (not installed: make setup)"
OTHER = {
    "apiVersion": "v1",
    "kind": "Config",
    "preferences": {},
    "clusters": [{"name": "kind-dev", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "users": [{"name": "kind-dev", "user": {"token": "dev-token-value"}}],
    "contexts": [{"name": "kind-dev", "context": {"cluster": "kind-dev", "user": "kind-dev"}}],
    "current-context": "kind-dev",
}


def load(path):
    return yaml.safe_load(Path(path).read_text())


def test_creates_0600_kubeconfig(run, args, oci_stub):
    result, failed = run(**args)
    assert not failed and result["changed"] is True
    assert stat.S_IMODE(os.stat(args["dest"]).st_mode) == 0o600
    doc = load(args["dest"])
    assert doc["clusters"][0] == {
        "name": "cluster-c4tqmrsmy2d",
        "cluster": {"server": "https://203.0.113.10:6443", "certificate-authority-data": oci_stub.clusters[CLUSTER].ca_data()},
    }
    exec_cfg = doc["users"][0]["user"]["exec"]
    assert exec_cfg["command"] == "oci" and exec_cfg["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert exec_cfg["args"][:7] == ["ce", "cluster", "generate-token", "--cluster-id", CLUSTER, "--region", "us-ashburn-1"]
    assert exec_cfg["args"][7:] == ["--config-file", args["config_file_location"]]  # non-default config file: kubectl needs it
    assert doc["current-context"] == "context-c4tqmrsmy2d"
    assert result["context"] == "context-c4tqmrsmy2d" and result["server"] == "https://203.0.113.10:6443"
    assert result["dest"] == args["dest"] and result["region"] == "us-ashburn-1"


def test_second_run_unchanged_and_not_rewritten(run, args):
    run(**args)
    before = os.stat(args["dest"])
    result, failed = run(**args)
    after = os.stat(args["dest"])
    assert not failed and result["changed"] is False
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_equivalent_formatting_is_not_a_change(run, args):
    run(**args)
    Path(args["dest"]).write_text(json.dumps(load(args["dest"]), indent=1))  # same content, other layout
    os.chmod(args["dest"], 0o600)
    result, _exit = run(**args)
    assert result["changed"] is False


def test_check_mode_predicts_and_writes_nothing(run, args, oci_stub):
    result, failed = run(_ansible_check_mode=True, **args)
    assert not failed and result["changed"] is True
    assert not Path(args["dest"]).exists() and not Path(args["dest"]).parent.exists()
    run(**args)
    result, _exit = run(_ansible_check_mode=True, **args)
    assert result["changed"] is False
    result, _exit = run(_ansible_check_mode=True, **dict(args, endpoint="PRIVATE_ENDPOINT"))
    assert result["changed"] is True
    assert load(args["dest"])["clusters"][0]["cluster"]["server"] == "https://203.0.113.10:6443"


def test_merge_keeps_other_clusters(run, args):
    Path(args["dest"]).parent.mkdir(parents=True)
    Path(args["dest"]).write_text(yaml.safe_dump(OTHER))
    result, _exit = run(**args)
    doc = load(args["dest"])
    assert result["changed"] is True
    assert [c["name"] for c in doc["clusters"]] == ["kind-dev", "cluster-c4tqmrsmy2d"]
    assert doc["users"][0] == OTHER["users"][0] and doc["contexts"][0] == OTHER["contexts"][0]
    assert doc["current-context"] == "context-c4tqmrsmy2d"
    # switching endpoint replaces our entry in place and keeps the others
    run(**dict(args, endpoint="PRIVATE_ENDPOINT"))
    doc = load(args["dest"])
    assert [c["cluster"]["server"] for c in doc["clusters"]] == ["https://127.0.0.1:6443", "https://10.0.0.10:6443"]


def test_merge_without_current_context(run, args):
    Path(args["dest"]).parent.mkdir(parents=True)
    Path(args["dest"]).write_text(yaml.safe_dump(OTHER))
    result, _exit = run(set_current_context=False, context="oke-prod", **args)
    doc = load(args["dest"])
    assert doc["current-context"] == "kind-dev" and result["current_context"] == "kind-dev"
    assert [c["name"] for c in doc["contexts"]] == ["kind-dev", "oke-prod"]
    assert doc["contexts"][1]["context"] == {"cluster": "oke-prod", "user": "oke-prod"}


def test_replace_drops_other_clusters(run, args):
    Path(args["dest"]).parent.mkdir(parents=True)
    Path(args["dest"]).write_text(yaml.safe_dump(OTHER))
    result, _exit = run(merge=False, **args)
    doc = load(args["dest"])
    assert result["changed"] is True and [c["name"] for c in doc["clusters"]] == ["cluster-c4tqmrsmy2d"]
    assert run(merge=False, **args)[0]["changed"] is False


def test_replace_overwrites_unparsable_file_but_merge_refuses(run, args):
    Path(args["dest"]).parent.mkdir(parents=True)
    Path(args["dest"]).write_text("clusters: [unclosed\n")
    result, failed = run(**args)
    assert failed and "is not valid YAML" in result["msg"] and "merge=false" in result["msg"]
    result, failed = run(merge=False, **args)
    assert not failed and result["changed"] is True and load(args["dest"])["clusters"][0]["name"] == "cluster-c4tqmrsmy2d"


def test_mode_is_corrected(run, args):
    run(**args)
    content = Path(args["dest"]).read_text()
    os.chmod(args["dest"], 0o644)
    result, _exit = run(_ansible_diff=True, **args)
    assert result["changed"] is True and stat.S_IMODE(os.stat(args["dest"]).st_mode) == 0o600
    assert Path(args["dest"]).read_text() == content
    assert "(mode 0644)" in result["diff"]["before_header"]


def test_diff_masks_secrets(run, args):
    Path(args["dest"]).parent.mkdir(parents=True)
    Path(args["dest"]).write_text(yaml.safe_dump(OTHER))
    result, _exit = run(_ansible_diff=True, credential="token", **args)
    diff = result["diff"]
    assert "dev-token-value" not in result["_raw"]
    assert diff["before"].count("token: '********'") == 1 and diff["after"].count("token: '********'") == 1
    assert diff["after"].count("token: '******** (changed)'") == 1  # the minted token is new: masked, marked as changed
    assert "cluster-c4tqmrsmy2d" in diff["after"] and "cluster-c4tqmrsmy2d" not in diff["before"]
    minted = load(args["dest"])["users"][1]["user"]["token"]
    assert minted not in result["_raw"]


def test_token_credential_verifies_and_always_changes(run, args, oci_stub):
    result, _exit = run(credential="token", **args)
    doc = load(args["dest"])
    token = doc["users"][0]["user"]["token"]
    assert "exec" not in doc["users"][0]["user"]
    assert oci_stub.verify_cluster_token(token)["cluster_id"] == CLUSTER
    assert base64.urlsafe_b64decode(token).decode().startswith(f"https://containerengine.us-ashburn-1.oraclecloud.com/cluster_request/{CLUSTER}?")
    assert result["token_expiration"].endswith("Z") and result["exec_args"] == []
    time.sleep(1.05)  # the signature covers the Date header (1 s resolution): a later run mints another token
    assert run(credential="token", **args)[0]["changed"] is True
    assert load(args["dest"])["users"][0]["user"]["token"] != token


def test_profile_is_added_to_exec(run, args, oci_identity):
    oci_identity.write_config({"prod": {"user": oci_identity.user}})  # inherits the rest from DEFAULT
    result, _exit = run(config_profile_name="prod", **args)
    assert result["exec_args"] == ["--config-file", args["config_file_location"], "--profile", "prod"]
    assert load(args["dest"])["users"][0]["user"]["exec"]["args"][-2:] == ["--profile", "prod"]
    result, _exit = run(config_profile_name="prod", exec_auth_args=False, **args)
    assert result["changed"] is True and load(args["dest"])["users"][0]["user"]["exec"]["args"][-1] == "us-ashburn-1"


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(cluster_id="ocid1.cluster.oc1.iad"), "cluster_id is not a well-formed OCID of a cluster: expected ocid1.cluster."),
        (dict(cluster_id="ocid1.user.oc1..aaaaaaaaabcdef"), "it is the OCID of a user, not of a cluster"),
        (dict(api_user="bob"), "api_user is not a well-formed OCID of a user: it does not start with ocid1."),
        (dict(timeout=0), "timeout must be a number of seconds greater than 0 and at most 300"),
    ],
)
def test_input_errors_before_any_call(run, args, oci_stub, bad, message):
    result, failed = run(**dict(args, **bad))
    assert failed and message in result["msg"]
    assert oci_stub.requests == [] and not Path(args["dest"]).exists()


def test_oci_errors_leave_file_untouched(run, args, oci_stub):
    Path(args["dest"]).parent.mkdir(parents=True)
    Path(args["dest"]).write_text(yaml.safe_dump(OTHER))
    before = Path(args["dest"]).read_text()
    result, failed = run(**dict(args, cluster_id="ocid1.cluster.oc1.iad.aaaaaaaamissing0000000000"))
    assert failed and "404 NotAuthorizedOrNotFound" in result["msg"] and result["status"] == 404 and result["opc_request_id"]
    oci_stub.api_keys.clear()
    result, failed = run(**args)
    assert failed and "401 NotAuthenticated" in result["msg"] and "auth_type=api_key" in result["msg"]
    assert Path(args["dest"]).read_text() == before


def test_pass_phrase_never_echoed(run, args, tmp_path, oci_stub):
    ident = make_identity(oci_stub, tmp_path / "enc", pass_phrase="correct-horse")
    ident.pass_phrase = None
    ident.write_config({})
    result, failed = run(**dict(args, config_file_location=str(ident.config_file), api_user_key_pass_phrase="battery-staple"))
    assert failed and "passphrase is wrong" in result["msg"]
    assert "battery-staple" not in result["_raw"]
    result, failed = run(**dict(args, config_file_location=str(ident.config_file), api_user_key_pass_phrase="correct-horse"))
    assert not failed and "correct-horse" not in result["_raw"]


# --- same content as `oci ce cluster create-kubeconfig` ---------------------------------------
def cli(home, stub, *extra):
    env = dict(os.environ, HOME=str(home), OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING="True", SUPPRESS_LABEL_WARNING="True")
    proc = subprocess.run([OCI_CLI, "ce", "cluster", "create-kubeconfig", "--cluster-id", CLUSTER, "--endpoint", stub.url, *extra],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def home(tmp_path, oci_identity, monkeypatch):
    """A HOME whose ~/.oci/config is the test identity, for both the CLI and the module."""
    home = tmp_path / "home"
    (home / ".oci").mkdir(parents=True)
    shutil.copy(oci_identity.config_file, home / ".oci" / "config")
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.mark.parametrize("endpoint", ["PUBLIC_ENDPOINT", "PRIVATE_ENDPOINT", "VCN_HOSTNAME", "LEGACY_KUBERNETES"])
def test_same_content_as_oci_cli(run, home, oci_stub, endpoint):
    cli(home, oci_stub, "--file", str(home / "cli-config"), "--kube-endpoint", endpoint)
    result, failed = run(cluster_id=CLUSTER, endpoint=endpoint, dest=str(home / "mod-config"), service_endpoint=oci_stub.url, retries=0)
    assert not failed and result["exec_args"] == []
    assert load(home / "mod-config") == load(home / "cli-config")
    # documented difference: the CLI writes 0644, the module 0600
    assert stat.S_IMODE(os.stat(home / "cli-config").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(home / "mod-config").st_mode) == 0o600


def test_same_merge_as_oci_cli(run, home, oci_stub):
    for name in ("cli-config", "mod-config"):
        (home / name).write_text(yaml.safe_dump(OTHER))
    cli(home, oci_stub, "--file", str(home / "cli-config"), "--kube-endpoint", "PUBLIC_ENDPOINT")
    run(cluster_id=CLUSTER, dest=str(home / "mod-config"), service_endpoint=oci_stub.url, retries=0)
    cli_doc, mod_doc = load(home / "cli-config"), load(home / "mod-config")
    # documented difference: the CLI copies OKE's empty `kind` over the file's; the module keeps the file's
    assert cli_doc.pop("kind") == "" and mod_doc.pop("kind") == "Config"
    assert mod_doc == cli_doc
