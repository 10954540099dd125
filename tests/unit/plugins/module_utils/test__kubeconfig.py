"""Pure kubeconfig logic of okemesh.istio (module_utils/_kubeconfig.py)."""

from __future__ import annotations

import os
import stat

import pytest
import yaml

from ansible_collections.okemesh.istio.plugins.module_utils import _kubeconfig as kc
from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError

CLUSTER = "ocid1.cluster.oc1.iad.aaaaaaaaexample0000c4tqmrsmy2d"
OKE = {
    "apiVersion": "v1",
    "kind": "",
    "clusters": [{"name": "cluster-c4tqmrsmy2d", "cluster": {"server": "https://203.0.113.10:6443", "certificate-authority-data": "Q0E="}}],
    "users": [
        {
            "name": "user-c4tqmrsmy2d",
            "user": {
                "exec": {
                    "apiVersion": kc.EXEC_API_VERSION,
                    "args": ["ce", "cluster", "generate-token", "--cluster-id", CLUSTER, "--region", "us-ashburn-1"],
                    "command": "oci",
                    "env": [],
                }
            },
        }
    ],
    "contexts": [{"name": "context-c4tqmrsmy2d", "context": {"cluster": "cluster-c4tqmrsmy2d", "user": "user-c4tqmrsmy2d"}}],
    "current-context": "context-c4tqmrsmy2d",
}
OTHER = {
    "apiVersion": "v1",
    "kind": "Config",
    "preferences": {"colors": True},
    "clusters": [{"name": "kind-dev", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "users": [{"name": "kind-dev", "user": {"client-key-data": "S0VZ", "client-certificate-data": "Q0VSVA=="}}],
    "contexts": [{"name": "kind-dev", "context": {"cluster": "kind-dev", "user": "kind-dev", "namespace": "apps"}}],
    "current-context": "kind-dev",
}


def test_shape_keeps_oke_names_and_appends_exec_args():
    doc = kc.shape_oke(OKE, CLUSTER, exec_args=["--profile", "prod"])
    assert kc.names(doc) == ("cluster-c4tqmrsmy2d", "user-c4tqmrsmy2d", "context-c4tqmrsmy2d")
    assert doc["users"][0]["user"]["exec"]["args"][-2:] == ["--profile", "prod"]
    assert OKE["users"][0]["user"]["exec"]["args"][-1] == "us-ashburn-1"  # input untouched


def test_shape_context_renames_all_three_entries():
    doc = kc.shape_oke(OKE, CLUSTER, context="prod")
    assert kc.names(doc) == ("prod", "prod", "prod")
    assert doc["contexts"][0]["context"] == {"cluster": "prod", "user": "prod"}
    assert doc["current-context"] == "prod"


def test_shape_token_replaces_exec():
    doc = kc.shape_oke(OKE, CLUSTER, token="abc")
    assert doc["users"][0]["user"] == {"token": "abc"}


def test_shape_exec_env_replaces_same_name():
    doc = kc.shape_oke(OKE, CLUSTER, exec_env={"OCI_CLI_PROFILE": "x"})
    assert doc["users"][0]["user"]["exec"]["env"] == [{"name": "OCI_CLI_PROFILE", "value": "x"}]


@pytest.mark.parametrize("section", ["clusters", "users", "contexts"])
def test_shape_rejects_not_exactly_one_entry(section):
    bad = dict(OKE, **{section: []})
    with pytest.raises(InputError, match=f"exactly one entry in '{section}'"):
        kc.shape_oke(bad, CLUSTER)


def test_merge_keeps_other_entries_and_top_level_keys():
    new = kc.shape_oke(OKE, CLUSTER)
    out = kc.merge(OTHER, new)
    assert [c["name"] for c in out["clusters"]] == ["kind-dev", "cluster-c4tqmrsmy2d"]
    assert [u["name"] for u in out["users"]] == ["kind-dev", "user-c4tqmrsmy2d"]
    assert out["users"][0] == OTHER["users"][0]
    assert out["contexts"][0]["context"]["namespace"] == "apps"
    assert out["preferences"] == {"colors": True}
    assert out["kind"] == "Config"  # the existing file's kind wins
    assert out["current-context"] == "context-c4tqmrsmy2d"
    assert OTHER["current-context"] == "kind-dev"  # input untouched


def test_merge_replaces_same_name_in_place():
    first = kc.merge(OTHER, kc.shape_oke(OKE, CLUSTER))
    changed = kc.shape_oke(OKE, CLUSTER)
    changed["clusters"][0]["cluster"]["server"] = "https://10.0.0.10:6443"
    out = kc.merge(first, changed)
    assert len(out["clusters"]) == 2
    assert out["clusters"][1]["cluster"]["server"] == "https://10.0.0.10:6443"


def test_merge_without_current_context_keeps_existing():
    out = kc.merge(OTHER, kc.shape_oke(OKE, CLUSTER), set_current_context=False)
    assert out["current-context"] == "kind-dev"


def test_merge_into_empty_is_replace():
    new = kc.shape_oke(OKE, CLUSTER)
    assert kc.merge({}, new) == new
    assert kc.merge(None, new, set_current_context=False)["current-context"] == ""


def test_merge_is_idempotent():
    new = kc.shape_oke(OKE, CLUSTER)
    once = kc.merge(OTHER, new)
    assert kc.same(kc.merge(once, new), once)


def test_replace_drops_others():
    out = kc.replace(kc.shape_oke(OKE, CLUSTER))
    assert [c["name"] for c in out["clusters"]] == ["cluster-c4tqmrsmy2d"]


def test_render_round_trips_and_keeps_key_order():
    text = kc.render(OKE)
    assert yaml.safe_load(text) == OKE
    assert text.index("clusters:") < text.index("users:") < text.index("contexts:")


def test_mask_hides_credentials_only():
    doc = kc.merge(OTHER, kc.shape_oke(OKE, CLUSTER, token="SECRET-TOKEN"))
    text = kc.render(kc.mask(doc))
    assert "SECRET-TOKEN" not in text and "S0VZ" not in text
    assert text.count(kc.MASK) == 3   # token, client key and (masked by structure: all of a user's data) client certificate
    assert "Q0E=" in text  # a cluster's CA data is not a secret
    assert "https://127.0.0.1:6443" in text


def test_parse_errors_do_not_echo_content():
    with pytest.raises(InputError) as err:
        kc.parse("token: hunter2\n  bad: [", source="x")
    assert "hunter2" not in err.value.msg and "line" in err.value.msg
    with pytest.raises(InputError, match="not a kubeconfig"):
        kc.parse("- a\n")
    with pytest.raises(InputError, match="'clusters' must be a list"):
        kc.parse("clusters: {}\n")
    with pytest.raises(InputError, match="needs a name"):
        kc.parse("users:\n- user: {}\n")
    assert kc.parse("") == {} and kc.parse("# only a comment\n") == {}


def test_atomic_write_creates_0600_and_leaves_no_temp(tmp_path):
    dest = tmp_path / "sub" / "config"
    kc.atomic_write(kc.read_state(str(dest)), "a: 1\n")
    assert dest.read_text() == "a: 1\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    dest.chmod(0o644)
    kc.atomic_write(kc.read_state(str(dest)), "a: 2\n")
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600   # group and other bits are dropped
    assert sorted(os.listdir(dest.parent)) == ["config"]


def test_atomic_write_follows_symlink(tmp_path):
    target = tmp_path / "real"
    target.write_text("old")
    link = tmp_path / "link"
    link.symlink_to(target)
    kc.atomic_write(kc.read_state(str(link)), "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"


def test_atomic_write_error_is_input_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="Cannot write kubeconfig"):
        kc.atomic_write(str(blocker / "config"), "a")


def test_read_file(tmp_path):
    assert kc.read_file(str(tmp_path / "none")) == (None, None)
    f = tmp_path / "c"
    f.write_text("x: 1\n")
    f.chmod(0o640)
    assert kc.read_file(str(f)) == ("x: 1\n", 0o640)
    with pytest.raises(InputError, match="not a regular file"):
        kc.read_file(str(tmp_path))
