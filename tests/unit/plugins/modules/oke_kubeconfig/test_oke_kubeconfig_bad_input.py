"""okemesh.istio.oke_kubeconfig under careless or hostile input (issue 14).

Every case runs the module's main() with the real OCI SDK against tests/oci_stub and asserts:
a clean message (no traceback, no ``exception``), the file at ``dest`` byte-identical with its
owner, group and mode (or, when the run succeeds, the intended content with owner and group
kept), and no secret of the file in the result or the diff.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.okemesh.istio.plugins.module_utils import _kubeconfig as kc
from tests.oci_stub.identity import CLUSTER

REPO = Path(__file__).resolve().parents[5]
UID, GID = 1234, 2345  # the owner of the hostile kubeconfig (the tests run as root)
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLXNlY3JldA"

# A kubeconfig holding a credential in every place a kubeconfig can hold one, with comments.
HOSTILE = """\
# kubeconfig of the platform team -- keep this comment
apiVersion: v1
kind: Config
preferences:
  extensions:
    - name: vendor
      extension:
        apiKey: SECRET-pref-ext-key
clusters:
  - name: dev   # the dev cluster
    cluster:
      server: https://SECRET-srv-user:SECRET-srv-pass@127.0.0.1:6443
      proxy-url: http://SECRET-proxy-user:SECRET-proxy-pass@proxy.example:3128/?auth=SECRET-proxy-query
      certificate-authority-data: Q0EtREFUQQ==
users:
  - name: dev-token
    user:
      token: SECRET-token
  - name: dev-basic
    user:
      username: alice
      password: SECRET-password
  - name: dev-cert
    user:
      client-certificate-data: SECRET-cert-data
      client-key-data: SECRET-key-data
  - name: dev-exec
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1beta1
        command: get-token
        args: ["--token", "SECRET-arg-token", "--password=SECRET-arg-password", "SECRET-positional"]
        env:
          - name: API_KEY
            value: SECRET-env-value
  - name: dev-oidc
    user:
      auth-provider:
        name: oidc
        config:
          client-secret: SECRET-oidc-client-secret
          id-token: SECRET-oidc-id-token
          refresh-token: SECRET-oidc-refresh
          idp-issuer-url: https://SECRET-idp-user:SECRET-idp-pass@idp.example
  - name: dev-ext
    user:
      extensions:
        - name: vault
          extension:
            note: SECRET-user-ext
      unknown-field: SECRET-unknown-field
      installHint: "-----BEGIN RSA PRIVATE KEY-----SECRET-pem-----END RSA PRIVATE KEY-----"
contexts:
  - name: dev   # default context
    context: {cluster: dev, user: dev-token, namespace: default}
current-context: dev
x-notes: {JWT}
"x-token=SECRET-in-a-key": true
""".replace("{JWT}", JWT)
SECRETS = sorted(set(re.findall(r"SECRET-[A-Za-z0-9-]+", HOSTILE)) | {JWT})


# --- helpers -------------------------------------------------------------------------------
def snapshot(path):
    """What must not change: bytes, owner, group, mode, inode (None when absent)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    data = Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else None
    return (data, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), stat.S_IFMT(st.st_mode), st.st_ino)


def assert_clean(result, *extra_secrets, own_options=False):
    """No traceback, no exception text, no secret anywhere in what the module printed.

    ``own_options``: the extra secrets are option values the user passed; Ansible echoes options
    that are not no_log in ``invocation``, so only the rest of the result is checked for them.
    """
    raw = result["_raw"]
    if own_options:
        raw = json.dumps({k: v for k, v in result.items() if k not in ("_raw", "invocation")})
    assert "Traceback" not in raw and "exception" not in result, raw
    for secret in [*SECRETS, *extra_secrets]:
        assert secret not in raw, f"{secret} leaked: {raw}"


def write_hostile(path, text=HOSTILE, mode=0o640):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chown(path, UID, GID)
    os.chmod(path, mode)
    return path


@pytest.fixture
def hostile(args):
    """dest holds the hostile kubeconfig, owned by UID:GID, mode 0640."""
    return write_hostile(args["dest"])


@contextlib.contextmanager
def deadline(seconds):
    """Fail instead of hanging (FIFOs, devices): the module must not block on them."""

    def expired(signum, frame):
        raise AssertionError(f"the module blocked for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --- it keeps what it does not own -------------------------------------------------------------
def test_merge_keeps_owner_group_comments_and_other_entries(run, args, hostile):
    before_doc = yaml.safe_load(HOSTILE)
    result, failed = run(_ansible_diff=True, **args)
    assert not failed and result["changed"] is True
    assert_clean(result)
    st = os.stat(hostile)
    assert (st.st_uid, st.st_gid) == (UID, GID)  # not root's
    assert stat.S_IMODE(st.st_mode) == 0o600  # group bits dropped: a kubeconfig holds credentials
    text = hostile.read_text()
    # every line of the old file survives as it was (comments, flow style, quotes, indentation)
    for line in HOSTILE.splitlines():
        if not line.startswith("current-context"):
            assert line in text.splitlines(), line
    doc = yaml.safe_load(text)
    for section in ("clusters", "users", "contexts"):
        assert doc[section][: len(before_doc[section])] == before_doc[section]
    assert [u["name"] for u in doc["users"]][-1] == "user-c4tqmrsmy2d"
    assert doc["current-context"] == "context-c4tqmrsmy2d" and doc["x-notes"] == JWT
    # the next run finds nothing to do and does not touch the file
    snap = snapshot(hostile)
    result, failed = run(**args)
    assert not failed and result["changed"] is False and snapshot(hostile) == snap


def test_diff_masks_every_credential(run, args, hostile):
    snap = snapshot(hostile)
    result, failed = run(_ansible_diff=True, _ansible_check_mode=True, **args)
    assert not failed and result["changed"] is True and snapshot(hostile) == snap
    assert_clean(result)
    before = yaml.safe_load(result["diff"]["before"])
    users = {u["name"]: u["user"] for u in before["users"]}
    assert users["dev-token"] == {"token": kc.MASK}
    assert users["dev-basic"] == {"username": "alice", "password": kc.MASK}
    assert users["dev-cert"] == {"client-certificate-data": kc.MASK, "client-key-data": kc.MASK}
    exec_cfg = users["dev-exec"]["exec"]
    assert exec_cfg["args"] == [kc.MASK] * 4 and exec_cfg["command"] == "get-token"
    assert exec_cfg["env"] == [{"name": "API_KEY", "value": kc.MASK}]
    assert users["dev-oidc"]["auth-provider"]["name"] == "oidc"
    assert set(users["dev-oidc"]["auth-provider"]["config"].values()) == {kc.MASK}
    assert users["dev-ext"]["unknown-field"] == kc.MASK and users["dev-ext"]["installHint"] == kc.MASK
    cluster = before["clusters"][0]["cluster"]
    assert cluster["server"] == "https://********@127.0.0.1:6443"
    assert cluster["proxy-url"] == "http://********@proxy.example:3128/?auth=********"
    assert cluster["certificate-authority-data"] == "Q0EtREFUQQ=="  # public: shown
    assert before["x-notes"] == kc.MASK and before["********-9"] is True  # a key not shaped like a key name: masked
    # the entry this run writes stays readable: its exec arguments are the module's own
    after = yaml.safe_load(result["diff"]["after"])
    own = [u for u in after["users"] if u["name"] == "user-c4tqmrsmy2d"][0]["user"]["exec"]
    assert own["args"][:5] == ["ce", "cluster", "generate-token", "--cluster-id", CLUSTER]
    assert "# kubeconfig of the platform team" not in result["diff"]["before"]  # comments may hold anything: not shown


def test_diff_of_replace_masks_the_old_file(run, args, hostile):
    result, failed = run(_ansible_diff=True, merge=False, **args)
    assert not failed and result["changed"] is True
    assert_clean(result)
    assert "dev-exec" in result["diff"]["before"] and "dev-exec" not in result["diff"]["after"]
    st = os.stat(hostile)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (UID, GID, 0o600)


def test_own_entry_with_foreign_args_is_masked(run, args, hostile):
    """Someone added a token to the module's own exec entry: masked in 'before', gone in 'after'."""
    run(**args)
    doc = yaml.safe_load(hostile.read_text())
    own = [u for u in doc["users"] if u["name"] == "user-c4tqmrsmy2d"][0]["user"]["exec"]
    own["args"] += ["--token", "SECRET-added-by-hand"]
    hostile.write_text(yaml.safe_dump(doc))
    result, failed = run(_ansible_diff=True, **args)
    assert not failed and result["changed"] is True
    assert_clean(result, "SECRET-added-by-hand")
    before = yaml.safe_load(result["diff"]["before"])
    args_before = [u for u in before["users"] if u["name"] == "user-c4tqmrsmy2d"][0]["user"]["exec"]["args"]
    assert args_before[:3] == ["ce", "cluster", "generate-token"] and args_before[-2:] == [kc.MASK, kc.MASK]  # not the module's own: masked


@pytest.mark.parametrize("mode, want", [(0o644, 0o600), (0o600, 0o600), (0o400, 0o400), (0o700, 0o700), (0o000, 0o400)])
def test_mode_keeps_owner_bits_drops_the_rest(run, args, tmp_path, mode, want):
    run(**args)
    path = Path(args["dest"])
    os.chown(path, UID, GID)
    os.chmod(path, mode)
    content = path.read_bytes()
    result, failed = run(**args)
    assert not failed and result["changed"] is (mode != want)
    st = os.stat(path)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (want, UID, GID) and path.read_bytes() == content


def test_new_file_is_0600(run, args):
    result, failed = run(**args)
    assert not failed and stat.S_IMODE(os.stat(args["dest"]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(Path(args["dest"]).parent).st_mode) == 0o700


def test_kubectl_layout_kept(run, args):
    """A file with kubectl's layout (sequences not indented) keeps it for the entries it had."""
    text = (
        "apiVersion: v1\nkind: Config\n# clusters follow\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: kind\n"
        "contexts:\n- context:\n    cluster: kind\n    user: kind\n  name: kind\ncurrent-context: kind\nusers:\n- name: kind\n  user:\n"
        "    token: SECRET-token\n"
    )
    path = write_hostile(args["dest"], text)
    run(**args)
    new = path.read_text()
    assert new.startswith(text[: text.index("contexts:")] + "- name: cluster-")


# --- dest that is not a regular file -----------------------------------------------------------
def test_dangling_symlink_refused(run, args, tmp_path):
    dest = Path(args["dest"])
    dest.parent.mkdir(parents=True)
    dest.symlink_to(tmp_path / "nowhere" / "config")
    result, failed = run(**args)
    assert failed and "is a dangling symlink" in result["msg"] and "does not replace a link" in result["msg"]
    assert_clean(result)
    assert dest.is_symlink() and not (tmp_path / "nowhere").exists() and result.get("changed") is not True


def test_symlink_loop_refused(run, args):
    dest = Path(args["dest"])
    dest.parent.mkdir(parents=True)
    other = dest.parent / "other"
    dest.symlink_to(other)
    other.symlink_to(dest)
    result, failed = run(**args)
    assert failed and "is a symlink loop" in result["msg"]
    assert_clean(result)
    assert dest.is_symlink() and other.is_symlink() and os.readlink(dest) == str(other)


def test_symlink_to_regular_file_written_through(run, args, tmp_path):
    target = write_hostile(tmp_path / "real" / "kubeconfig")
    dest = Path(args["dest"])
    dest.parent.mkdir(parents=True)
    (dest.parent / "hop").symlink_to(target)
    dest.symlink_to(dest.parent / "hop")  # a chain of two links
    result, failed = run(_ansible_diff=True, **args)
    assert not failed and result["changed"] is True
    assert_clean(result)
    assert dest.is_symlink() and (dest.parent / "hop").is_symlink()
    st = os.stat(target)
    assert (st.st_uid, st.st_gid) == (UID, GID)
    assert yaml.safe_load(target.read_text())["current-context"] == "context-c4tqmrsmy2d"
    assert sorted(p.name for p in target.parent.iterdir()) == ["kubeconfig"]  # no temp file left
    assert run(**args)[0]["changed"] is False


@pytest.mark.parametrize("kind", ["directory", "fifo", "chardev", "link-to-chardev"])
@pytest.mark.parametrize("check_mode", [False, True])
def test_not_a_regular_file_refused(run, args, kind, check_mode):
    dest = Path(args["dest"])
    dest.parent.mkdir(parents=True)
    expected = {"directory": "is a directory", "fifo": "is a FIFO", "chardev": "is a character device", "link-to-chardev": "is a character device"}
    if kind == "directory":
        dest.mkdir()
    elif kind == "fifo":
        os.mkfifo(dest)
    elif kind == "chardev":
        os.mknod(dest, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null node
    else:
        dest.symlink_to("/dev/null")
    snap = snapshot(dest)
    null_before = os.stat("/dev/null")
    with deadline(30):
        result, failed = run(_ansible_check_mode=check_mode, **args)
    assert failed and expected[kind] in result["msg"] and "not a regular file" in result["msg"]
    assert_clean(result)
    assert snapshot(dest) == snap
    null_after = os.stat("/dev/null")
    assert stat.S_ISCHR(null_after.st_mode) and null_after.st_ino == null_before.st_ino


@pytest.mark.parametrize(
    "dest, message",
    [
        ("{tmp}/file/config", "is below something that is not a directory"),
        ("{tmp}/kube/", "name a file, not a directory"),
        ("{tmp}/kube/con\x00fig", "dest must not contain a NUL character"),
        ("{tmp}/kube/con\nfig", "dest must not contain control characters"),
        ("", "dest must be the path of a kubeconfig file"),
    ],
)
def test_bad_dest_paths(run, args, tmp_path, oci_stub, dest, message):
    (tmp_path / "file").write_text("I am a file\n")
    result, failed = run(**dict(args, dest=dest.format(tmp=tmp_path)))
    assert failed and message in result["msg"]
    assert_clean(result)
    assert (tmp_path / "file").read_text() == "I am a file\n" and not (tmp_path / "kube").exists()


# --- dest whose content is not a kubeconfig ------------------------------------------------------
def _alias_bomb(levels=8, width=10):
    lines = ['l0: &l0 ["SECRET-bomb", "SECRET-bomb"]']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


BAD_FILES = [
    ("invalid-yaml", "apiVersion: v1\nusers:\n- name: x\n  user:\n    password: SECRET-password\n    bad: [unclosed\n", "is not valid YAML (line"),
    ("duplicate-key", "apiVersion: v1\ntoken: SECRET-token\ntoken: SECRET-token-2\n", "has a duplicate key (line 3, column 1)"),
    ("top-level-scalar", "root:SECRET-password:0:0:root:/root:/bin/bash\n", "its top level is a string"),
    ("top-level-list", "- SECRET-token\n- SECRET-token-2\n", "its top level is a list"),
    ("users-not-a-list", "users: SECRET-token\n", "'users' must be a list, not a string"),
    ("entry-without-name", "users:\n- user: {token: SECRET-token}\n", "entry 1 of 'users' (line 2, column 3) needs a name"),
    ("entry-name-number", "clusters:\n- name: 12\n  cluster: {server: https://a}\n", "entry 1 of 'clusters' (line 2, column 3) needs a name"),
    ("entry-not-mapping", "contexts:\n- SECRET-token\n", "entry 1 of 'contexts' (line 2, column 3) must be a mapping"),
    ("duplicate-names", "users:\n- name: a\n  user: {token: SECRET-token}\n- name: a\n  user: {token: SECRET-token-2}\n", "entries 1 and 2 of 'users'"),
    ("user-not-mapping", "users:\n- name: a\n  user: SECRET-token\n", "'user' of entry 1 of 'users' (line 2, column 3) must be a mapping"),
    ("current-context-list", "current-context: [SECRET-token]\n", "'current-context' must be a string, not a list"),
    ("alias-bomb", _alias_bomb(), "YAML aliases that expand to more than"),
    ("recursive-alias", "users: &u\n- name: a\n  user: {token: SECRET-token}\n- *u\n", "entry 2 of 'users' (line 1, column 8) must be a mapping"),
    ("deep-flow-nesting", "a: " + "[" * 3000 + "]" * 3000 + "\n", "nested more than 64 levels deep (line 1)"),
    ("deep-block-nesting", "a:\n" + "".join(" " * i + "-\n" for i in range(1, 3000)), "nested too deeply"),
    ("two-documents", "apiVersion: v1\n---\napiVersion: v1\n", "is not valid YAML (line 2, column 1)"),
    ("bad-timestamp", "x: 2026-13-45\ntoken: SECRET-token\n", "has a value YAML cannot load"),
    ("bad-hex", "x: 0x_\ntoken: SECRET-token\n", "has a value YAML cannot load"),
    ("list-key", "? [SECRET-token, b]\n: c\nusers: []\n", "has a mapping key that is a list, not a string (line 1, column 1)"),
    ("nested-mapping-key", "users:\n- name: x\n  user:\n    ? {SECRET-token: 1}\n    : v\n", "has a mapping key that is a mapping, not a string (line 4"),
]


@pytest.mark.parametrize("text, message", [pytest.param(t, m, id=i) for i, t, m in BAD_FILES])
def test_bad_existing_file_refused_on_merge_replaced_without(run, args, text, message):
    path = write_hostile(args["dest"], text)
    snap = snapshot(path)
    with deadline(60):
        result, failed = run(_ansible_diff=True, **args)
    assert failed and message in result["msg"] and "merge=false" in result["msg"], result["msg"]
    assert_clean(result, "SECRET-token-2", "SECRET-bomb", "root:")
    assert snapshot(path) == snap
    # merge=false replaces it: the intended content, owner kept, the old text never shown
    with deadline(60):
        result, failed = run(_ansible_diff=True, merge=False, **args)
    assert not failed and result["changed"] is True
    assert_clean(result, "SECRET-token-2", "SECRET-bomb", "root:")
    assert yaml.safe_load(path.read_text())["current-context"] == "context-c4tqmrsmy2d"
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (UID, GID)


def test_not_utf8_refused(run, args):
    path = Path(args["dest"])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"apiVersion: v1\ntoken: SECRET-token-\xff\xfe\n")
    snap = snapshot(path)
    result, failed = run(**args)
    assert failed and "is not UTF-8 text (line 2, column 21)" in result["msg"]
    assert_clean(result)
    assert snapshot(path) == snap


def test_oversized_file_refused_on_merge_replaced_without(run, args):
    path = Path(args["dest"])
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:
        handle.truncate(kc.MAX_FILE_BYTES + 1)  # sparse: nothing to read, but too large
    snap = snapshot(path)
    result, failed = run(**args)
    assert failed and f"is {kc.MAX_FILE_BYTES + 1} bytes, more than the {kc.MAX_FILE_BYTES} accepted" in result["msg"]
    assert snapshot(path) == snap
    result, failed = run(_ansible_diff=True, merge=False, **args)
    assert not failed and result["changed"] is True and "not read: larger than" in result["diff"]["before"]
    assert yaml.safe_load(path.read_text())["current-context"] == "context-c4tqmrsmy2d"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "\ufeffapiVersion: v1\n"])
def test_empty_or_comment_only_file_is_filled(run, args, text):
    path = write_hostile(args["dest"], text)
    result, failed = run(**args)
    assert not failed and result["changed"] is True
    assert yaml.safe_load(path.read_text().lstrip("\ufeff"))["current-context"] == "context-c4tqmrsmy2d"
    assert os.stat(path).st_uid == UID


# --- options -------------------------------------------------------------------------------------
BAD_OPTIONS = [
    # service_endpoint must be a URL (issue item 10)
    (dict(service_endpoint="not a url"), "service_endpoint must be a URL without spaces"),
    (dict(service_endpoint="notaurl"), "service_endpoint must be a URL with scheme and host"),
    (dict(service_endpoint="ftp://127.0.0.1/"), "service_endpoint must be a URL with scheme and host"),
    (dict(service_endpoint="http://127.0.0.1:99999"), "service_endpoint is not a valid URL (bad host or port)"),
    (dict(service_endpoint="http://[::1"), "service_endpoint is not a valid URL"),
    (dict(service_endpoint="http://127.0.0.1:0"), "service_endpoint is not a valid URL"),
    (dict(service_endpoint="http://localhost:abc"), "service_endpoint is not a valid URL"),
    (dict(service_endpoint="https://user:SECRET-endpoint-pw@containerengine.example"), "must not carry credentials"),
    (dict(service_endpoint="https://containerengine.example/?token=SECRET-endpoint-query"), "must not have a query"),
    (dict(service_endpoint="http://containerengine.us-ashburn-1.oraclecloud.com"), "not a loopback address"),
    (dict(service_endpoint="https://containerengine.example\n"), "without spaces or control characters"),
    # OCIDs matched exactly (issue item 12)
    (dict(cluster_id=CLUSTER + "\n"), "whitespace or a control character at position %d" % (len(CLUSTER) + 1)),
    (dict(cluster_id=CLUSTER + " "), "whitespace or a control character"),
    (dict(cluster_id=" " + CLUSTER), "whitespace or a control character at position 1"),
    (dict(cluster_id=CLUSTER.replace("cluster.oc1", "cluster.oc1\t")), "whitespace or a control character"),
    (dict(cluster_id=CLUSTER.upper()), "does not start with ocid1."),
    (dict(cluster_id=CLUSTER[:-3] + "é12"), "non-ASCII character"),
    (dict(cluster_id=""), "cluster_id is not a well-formed OCID of a cluster: it is empty"),
    (dict(cluster_id="ocid1.cluster.oc1.iad.short"), "expected ocid1.cluster.<realm>.<region>.<unique id>"),
    (dict(api_user="ocid1.user.oc1..aaaaaaaauser0000000000\n"), "api_user is not a well-formed OCID of a user: it contains whitespace"),
    (dict(tenancy="ocid1.compartment.oc1..aaaaaaaacomp0000000000"), "it is the OCID of a compartment, not of a tenancy"),
    # ranges
    (dict(timeout=0), "timeout must be a number of seconds greater than 0 and at most 300"),
    (dict(timeout=-1), "timeout must be"),
    (dict(timeout="nan"), "timeout must be"),
    (dict(timeout="inf"), "timeout must be"),
    (dict(timeout=301), "timeout must be"),
    (dict(timeout=1e12), "timeout must be"),
    (dict(retries=-1), "retries must be between 0 and 10"),
    (dict(retries=11), "retries must be between 0 and 10"),
    (dict(retries=10**12), "retries must be between 0 and 10"),
    (dict(region="us ashburn 1"), "region must be an OCI region identifier"),
    (dict(region="US-ASHBURN-1"), "region must be an OCI region identifier"),
    (dict(region="us-ashburn-1\n"), "region must be an OCI region identifier"),
    (dict(region="../../etc"), "region must be an OCI region identifier"),
    (dict(context=""), "context must be a non-empty name"),
    (dict(context=" prod"), "context must be a non-empty name"),
    (dict(context="prod\nadmin"), "context must be a non-empty name"),
    (dict(context="x" * 254), "at most 253 characters"),
    (dict(api_user_fingerprint="SECRET-fingerprint"), "api_user_fingerprint is not a key fingerprint"),
    (dict(config_profile_name="prod\n[evil]"), "config_profile_name must not contain control characters"),
    (dict(config_file_location="/tmp/x\x00y"), "config_file_location must not contain a NUL character"),
    (dict(endpoint="PUBLIC"), "value of endpoint must be one of"),
    (dict(credential="password"), "value of credential must be one of"),
    (dict(timeout="soon"), "argument 'timeout' is of type"),
]


@pytest.mark.parametrize("bad, message", [pytest.param(b, m, id="%s=%r" % next(iter(b.items()))) for b, m in BAD_OPTIONS])
def test_bad_options_fail_before_any_call(run, args, hostile, oci_stub, bad, message):
    snap = snapshot(hostile)
    result, failed = run(_ansible_diff=True, **dict(args, **bad))
    assert failed and message in result["msg"], result["msg"]
    assert_clean(result, "SECRET-endpoint-pw", "SECRET-endpoint-query", "SECRET-fingerprint", own_options=True)
    assert_clean(result)
    assert oci_stub.requests == [] and snapshot(hostile) == snap


def test_ocid_values_are_not_echoed(run, args, oci_stub):
    """Errors say what is wrong with an OCID, never the value itself."""
    value = "ocid1.cluster.oc1.iad.SECRET-looking-value"
    result, failed = run(**dict(args, cluster_id=value))
    assert failed and "cluster_id is not a well-formed OCID" in result["msg"] and value not in result["msg"]


# --- OCI answers that are not a kubeconfig ---------------------------------------------------------
BAD_ANSWERS = [
    ("not-yaml", b"this: [is not yaml", "the kubeconfig OCI returned is not valid YAML (line 1"),
    ("list", b"- a list\n", "the kubeconfig OCI returned is not a kubeconfig: its top level is a list"),
    ("alias-bomb", _alias_bomb().encode(), "the kubeconfig OCI returned has YAML aliases"),
    ("no-clusters", b"clusters: []\nusers: []\ncontexts: []\n", "expected exactly one entry in 'clusters', found 0"),
    ("not-utf8", b"\xff\xfe\x00garbage", "that is not UTF-8 text"),
]


@pytest.mark.parametrize("body, message", [pytest.param(b, m, id=i) for i, b, m in BAD_ANSWERS])
def test_bad_oci_answer_leaves_file_untouched(run, args, hostile, oci_stub, body, message):
    oci_stub.clusters[CLUSTER].content_override = body
    snap = snapshot(hostile)
    with deadline(60):
        result, failed = run(**args)
    assert failed and message in result["msg"], result["msg"]
    assert_clean(result, "SECRET-bomb")
    assert snapshot(hostile) == snap


def test_oci_errors_and_timeouts_leave_file_untouched(run, args, hostile, oci_stub):
    snap = snapshot(hostile)
    oci_stub.fail_next.append((500, "InternalServerError", "SECRET-server-message-is-fine-but-not-ours"))
    result, failed = run(**args)
    assert failed and "500 InternalServerError" in result["msg"] and result["status"] == 500
    assert snapshot(hostile) == snap
    oci_stub.latency = 2.5
    result, failed = run(**dict(args, timeout=0.5))
    assert failed and "Could not reach the OCI Container Engine endpoint" in result["msg"]
    assert_clean(result)
    assert snapshot(hostile) == snap


# --- other files the module reads ------------------------------------------------------------------
def test_security_token_file_fifo_refused(run, args, oci_identity, tmp_path):
    fifo = tmp_path / "token-fifo"
    os.mkfifo(fifo)
    oci_identity.write_config({"session": {"security_token_file": str(fifo)}})
    with deadline(30):
        result, failed = run(**dict(args, auth_type="security_token", config_profile_name="session"))
    assert failed and "security_token_file" in result["msg"] and "is a FIFO, not a regular file" in result["msg"]
    assert_clean(result)


def test_config_file_that_is_a_directory(run, args, tmp_path):
    result, failed = run(**dict(args, config_file_location=str(tmp_path)))
    assert failed and "is not a regular file (config_file_location)" in result["msg"]


# --- as Ansible runs it: a separate process, nothing on stderr -----------------------------------------
@pytest.mark.parametrize("bad", [dict(service_endpoint="not a url"), dict(cluster_id=CLUSTER + "\n"), dict(dest="{dangling}")])
def test_module_process_fails_cleanly(args, tmp_path, bad):
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "missing")
    mod_args = dict(args, **{k: v.format(dangling=dangling) if k == "dest" else v for k, v in bad.items()})
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": mod_args}))
    env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
    proc = subprocess.run([sys.executable, str(REPO / "plugins" / "modules" / "oke_kubeconfig.py"), str(args_file)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 1 and proc.stderr == ""
    result = json.loads(proc.stdout)
    assert result["failed"] is True and "Traceback" not in proc.stdout and "exception" not in result
    assert dangling.is_symlink()


# --- a run that cannot keep the owner writes nothing ------------------------------------------------
@contextlib.contextmanager
def acting_as(uid, gid):
    """Switch the effective uid/gid of this process (the tests run as root) and back."""
    os.setegid(gid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def shared_dir():
    """A directory every uid may write (pytest's tmp_path is root's only)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="okk-owner-"))
    os.chmod(path, 0o1777)  # noqa: S103 - sticky, world-writable like /tmp: the test switches uids
    yield path
    shutil.rmtree(path)


def test_write_that_cannot_keep_the_owner_writes_nothing(shared_dir):
    path = shared_dir / "config"
    path.write_text(HOSTILE)
    os.chown(path, 4321, 4321)
    os.chmod(path, 0o644)
    snap = snapshot(path)
    with acting_as(UID, GID):
        state = kc.read_state(str(path))
        with pytest.raises(kc.InputError) as err:
            kc.atomic_write(state, "apiVersion: v1\n")
    assert "belongs to uid 4321 and this run (uid 1234) cannot give the new file that owner; nothing was written" in err.value.msg
    assert snapshot(path) == snap and sorted(p.name for p in shared_dir.iterdir()) == ["config"]


def test_write_that_cannot_keep_the_group_warns(shared_dir):
    path = shared_dir / "config"
    path.write_text(HOSTILE)
    os.chown(path, UID, 4321)  # our file, a group this uid is not in
    with acting_as(UID, GID):
        state = kc.read_state(str(path))
        warnings = kc.atomic_write(state, "apiVersion: v1\n")
    assert warnings == [f"kubeconfig {path}: its group (gid 4321) could not be kept; the file now has gid {GID}"]
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, path.read_text()) == (UID, GID, "apiVersion: v1\n")


def test_changed_between_read_and_write_writes_nothing(tmp_path):
    path = write_hostile(tmp_path / "config")
    state = kc.read_state(str(path))
    with open(path, "a") as handle:  # another writer, after our read
        handle.write("# theirs\n")
    with pytest.raises(kc.InputError) as err:
        kc.atomic_write(state, "apiVersion: v1\n")
    assert "changed while the module ran; nothing was written" in err.value.msg
    assert path.read_text().endswith("# theirs\n") and sorted(p.name for p in tmp_path.iterdir()) == ["config"]


def test_hard_link_warned(run, args, hostile):
    os.link(hostile, hostile.parent / "other-name")
    result, failed = run(**args)
    assert not failed and "has 2 hard links" in json.dumps(result["warnings"])
    assert (hostile.parent / "other-name").read_text() == HOSTILE  # the other name keeps the old content, as warned


def test_key_file_that_is_a_fifo(run, args, tmp_path):
    fifo = tmp_path / "key-fifo"
    os.mkfifo(fifo)
    with deadline(30):
        result, failed = run(**dict(args, api_user_key_file=str(fifo)))
    assert failed and "is not a regular file" in result["msg"] and result["option"] == "api_user_key_file"


# --- the masking functions on their own ------------------------------------------------------------
@pytest.mark.parametrize(
    "url, masked",
    [
        ("https://203.0.113.10:6443", "https://203.0.113.10:6443"),
        ("http://u:SECRET-p@proxy:3128", "http://********@proxy:3128"),
        ("socks5://SECRET-only-user@[2001:db8::1]:1080/x", "socks5://********@[2001:db8::1]:1080/x"),
        ("https://h/p?token=SECRET-q&SECRET-bare", "https://h/p?token=********&********"),
        ("http://SECRET-u:? SECRET-p@proxy:3128/?a=b", kc.MASK),  # whitespace: not a plain URL
        ("http://SECRET-u:?SECRET-p@proxy:3128/?a=b", kc.MASK),  # an empty port: not a plain URL
        ("https://C1.Example.COM:6443/", "https://C1.Example.COM:6443/"),
        ("https://h/cb#access_token=SECRET-f", "https://h/cb#********"),
        ("user:SECRET-p@host", kc.MASK),  # not a URL but carries userinfo: all of it
        ("http://[::1", kc.MASK),
    ],
)
def test_mask_url(url, masked):
    assert kc.mask_url(url) == masked


@pytest.mark.parametrize(
    "value, secret",
    [(JWT, True), ("Bearer abc.def", True), ("basic dXNlcjpwYXNz", True), ("-----BEGIN EC PRIVATE KEY-----\nx", True),
     ("-----BEGIN CERTIFICATE-----\nx", False), ("https://h", False), ("eyJ-not-a-jwt", False), ("prod", False)],
)
def test_looks_secret(value, secret):
    assert kc.looks_secret(value) is secret


def test_urls_inside_text_are_masked_one_by_one():
    doc = {"users": [{"name": "u", "user": {"exec": {"command": "x", "installHint": "get it from https://a:SECRET-hint@h/x, then run it"}}}]}
    hint = kc.mask(doc)["users"][0]["user"]["exec"]["installHint"]
    assert hint == "get it from https://********@h/x, then run it"
