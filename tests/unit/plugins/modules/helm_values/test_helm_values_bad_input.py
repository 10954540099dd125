"""helm_values under hostile and careless input (issue 14), run through its main() on real files.

Every case asserts: the task fails with a clean message (no traceback, no ``exception`` field),
the message names what to fix, the directory is byte-for-byte and type-for-type as it was (no
file replaced, no temporary left), and no content of the file (SECRET) appears in the result.
A watchdog alarm turns a hang (a FIFO read) into a failure instead of a stuck test run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from tests.support.modules import on_target

from ansible_collections.okemesh.istio.plugins.modules import helm_values
from tests.fixtures.values.hostile import ALIAS_BOMB, MERGE_BOMB, RECURSIVE_ALIAS, SECRET, deep_flow, deep_mapping

IS_ROOT = os.geteuid() == 0


class Hang(Exception):
    pass


@pytest.fixture(autouse=True)
def watchdog():
    def on_alarm(_signum, _frame):
        raise Hang("the module did not return within 30 s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def run(capsys, **args):
    """Run the module; return (result dict, failed flag, raw output)."""
    with on_target(), patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        helm_values.main()
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    # what the module says, without Ansible's echo of the options the user gave it
    said = json.dumps(dict((k, v) for k, v in result.items() if k != "invocation")) + captured.err
    return result, exit_info.value.code != 0, said


def state(directory: Path) -> dict:
    """Every entry under ``directory``: type, mode, owner, link target or content."""
    out = {}
    for entry in sorted(directory.rglob("*")):
        st = entry.lstat()
        if stat.S_ISLNK(st.st_mode):
            what = ("link", os.readlink(entry))
        elif stat.S_ISREG(st.st_mode):
            what = ("file", entry.read_bytes())
        else:
            what = ("other", stat.S_IFMT(st.st_mode), st.st_rdev)
        out[str(entry.relative_to(directory))] = (what, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_ino)
    return out


def assert_clean_failure(capsys, directory: Path, expect: str, **args):
    before = state(directory)
    result, failed, raw = run(capsys, **args)
    assert failed, result
    assert expect in result["msg"], result["msg"]
    assert "Traceback" not in raw and "exception" not in result
    assert SECRET not in raw
    assert state(directory) == before
    return result


VALUES = "grafana:\n  enabled: false\ndb:\n  password: %s\n" % SECRET


@pytest.fixture
def values(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(VALUES)
    return path


# -- not a regular file --------------------------------------------------------------------------


@pytest.mark.skipif(not IS_ROOT, reason="mknod needs root")
@pytest.mark.parametrize(("rdev", "check_mode"), [((1, 3), False), ((1, 5), False), ((1, 5), True)], ids=["null", "zero", "zero-check"])
def test_character_device_is_refused_and_kept(capsys, tmp_path, rdev, check_mode):
    node = tmp_path / "dev-node"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(*rdev))
    assert_clean_failure(capsys, tmp_path, f"{node} is a character device, not a regular file", path=str(node), set={"a": 1}, _ansible_check_mode=check_mode)


@pytest.mark.skipif(not IS_ROOT, reason="mknod needs root")
def test_symlink_to_a_device_is_refused(capsys, tmp_path):
    node = tmp_path / "zero"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 5))
    link = tmp_path / "values.yaml"
    link.symlink_to(node)
    assert_clean_failure(capsys, tmp_path, "is a symlink to a character device", path=str(link), set={"a": 1})


@pytest.mark.parametrize("check_mode", [False, True])
def test_fifo_does_not_hang(capsys, tmp_path, check_mode):
    fifo = tmp_path / "values.yaml"
    os.mkfifo(fifo)
    assert_clean_failure(capsys, tmp_path, "is a FIFO (named pipe), not a regular file", path=str(fifo), set={"a": 1}, _ansible_check_mode=check_mode)


def test_socket_is_refused(capsys, tmp_path):
    path = tmp_path / "s.yaml"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        assert_clean_failure(capsys, tmp_path, "is a socket, not a regular file", path=str(path), set={"a": 1})
    finally:
        server.close()


def test_directory_is_refused(capsys, tmp_path):
    (tmp_path / "values.yaml").mkdir()
    assert_clean_failure(capsys, tmp_path, "is a directory, not a regular file", path=str(tmp_path / "values.yaml"), set={"a": 1})


@pytest.mark.parametrize("create", [True, False])
def test_dangling_symlink_is_refused_not_replaced(capsys, tmp_path, create):
    link = tmp_path / "values.yaml"
    link.symlink_to("missing-target.yaml")
    assert_clean_failure(capsys, tmp_path, "is a dangling symlink", path=str(link), set={"a": 1}, create=create)
    assert not (tmp_path / "missing-target.yaml").exists()


def test_symlink_loop_is_refused(capsys, tmp_path):
    (tmp_path / "one.yaml").symlink_to("two.yaml")
    (tmp_path / "two.yaml").symlink_to("one.yaml")
    assert_clean_failure(capsys, tmp_path, "is a symlink loop", path=str(tmp_path / "one.yaml"), set={"a": 1})


def test_symlink_to_a_directory_is_refused(capsys, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "values.yaml").symlink_to("dir")
    assert_clean_failure(capsys, tmp_path, "is a symlink to a directory", path=str(tmp_path / "values.yaml"), set={"a": 1})


def test_parent_is_a_file(capsys, tmp_path):
    (tmp_path / "plain").write_text("x")
    assert_clean_failure(capsys, tmp_path, "Cannot look at", path=str(tmp_path / "plain" / "values.yaml"), set={"a": 1})


# -- owner, group and mode are checked before anything is written --------------------------------


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        ({"owner": "nosuchuser-okemesh"}, "owner 'nosuchuser-okemesh' is not a user on this host"),
        ({"group": "nosuchgroup-okemesh"}, "group 'nosuchgroup-okemesh' is not a group on this host"),
        ({"mode": "abc"}, "mode 'abc' is neither an octal mode"),
        ({"mode": "0999"}, "mode '0999' is neither an octal mode"),
        ({"mode": "u+z"}, "mode 'u+z' is neither an octal mode"),
        ({"mode": 99999}, "mode 99999 is out of range"),
        ({"mode": "077777"}, "is out of range"),
    ],
)
@pytest.mark.parametrize("existing", [True, False], ids=["existing", "new"])
def test_bad_owner_group_mode_fail_before_writing(capsys, tmp_path, args, expect, existing):
    path = tmp_path / "values.yaml"
    if existing:
        path.write_text(VALUES)
    assert_clean_failure(capsys, tmp_path, expect, path=str(path), set={"grafana.enabled": True}, **args)
    assert path.exists() == existing


# -- bombs and bounds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (ALIAS_BOMB, "uses YAML aliases that expand to 123456770 more nodes than the 27 it holds"),
        (MERGE_BOMB, "over the limit of 100000 (max_alias_nodes)"),
        (RECURSIVE_ALIAS, "holds a recursive YAML alias (at line 1, column 6)"),
        (deep_mapping(250), "nests collections deeper than 200 levels"),
        (deep_flow(5000), "nests collections too deeply to be read"),
    ],
    ids=["alias-bomb", "merge-bomb", "recursive", "deep-block", "deep-flow"],
)
@pytest.mark.parametrize("check_mode", [False, True])
def test_bombs_fail_fast_with_a_clear_message(capsys, tmp_path, content, expect, check_mode):
    path = tmp_path / "values.yaml"
    path.write_text(content)
    assert_clean_failure(capsys, tmp_path, expect, path=str(path), set={"z": 1}, _ansible_check_mode=check_mode)


def test_alias_bound_can_be_raised(capsys, tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nuse1: *b\nuse2: *b\n")
    assert_clean_failure(capsys, tmp_path, "expand to 10 more nodes than the 9 it holds, over the limit of 9", path=str(path), set={"z": 1}, max_alias_nodes=9)
    result, failed, _raw = run(capsys, path=str(path), set={"z": 1}, max_alias_nodes=10)
    assert not failed and result["changed"]
    assert path.read_text() == "base: &b {x: 1, y: 2}\nuse1: *b\nuse2: *b\nz: 1\n"


def test_file_size_is_bounded_and_the_bound_can_be_raised(capsys, tmp_path):
    path = tmp_path / "values.yaml"
    text = "".join("key%d: %d\n" % (i, i) for i in range(200))
    path.write_text(text)
    assert_clean_failure(
        capsys, tmp_path, f"is {len(text)} bytes, larger than 1000 (max_file_size); raise max_file_size", path=str(path), set={"z": 1}, max_file_size=1000
    )
    result, failed, _raw = run(capsys, path=str(path), set={"z": 1}, max_file_size=len(text))
    assert not failed and result["changed"] and path.read_text() == text + "z: 1\n"


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        ({"max_file_size": 0}, "max_file_size must be between 1 and 1073741824; got 0"),
        ({"max_file_size": 2**40}, "max_file_size must be between 1 and 1073741824"),
        ({"max_alias_nodes": -1}, "max_alias_nodes must be between 0 and 100000000; got -1"),
        ({"lock_timeout": -1}, "lock_timeout must be a number of seconds between 0 and 3600"),
        ({"lock_timeout": 86400}, "lock_timeout must be a number of seconds between 0 and 3600"),
        ({"document": 10**12}, "document must be between"),
        ({"validate": "true"}, "validate must contain %s"),
        ({"validate": "sh -c 'unbalanced %s"}, "validate is not a valid command line (No closing quotation)"),
        ({"validate": "/nonexistent/okemesh-validator %s"}, "The validate command '/nonexistent/okemesh-validator' could not run"),
        ({"set": [{"path": "a", "value": SECRET, "extra": 1}]}, "got keys 'extra', 'path', 'value'"),
        ({"set": "a=1"}, "set must be a mapping of paths to values"),
        ({"set": {"grafana.enabled.x": 1}}, "'grafana.enabled' is a bool, so it has no 'x' inside"),
        ({"set": {"db.password.x": 1}}, "'db.password' is a str, so it has no 'x' inside"),
        ({"unset": [{"a": 1}]}, "A values path must be a string or a list of keys"),
    ],
)
def test_options_are_range_checked(capsys, values, args, expect):
    args.setdefault("set", {"grafana.enabled": True})
    assert_clean_failure(capsys, values.parent, expect, path=str(values), **args)


@pytest.mark.parametrize(("path", "expect"), [("", "path must name a values file"), ("values\0.yaml", "must not contain a NUL character")])
def test_bad_path_strings(capsys, tmp_path, monkeypatch, path, expect):
    monkeypatch.chdir(tmp_path)
    assert_clean_failure(capsys, tmp_path, expect, path=path, set={"a": 1})


# -- no file content in messages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (f"{SECRET}\n", "The top level of {path} is a str, not a mapping"),
        (f"root:x:0:0:{SECRET}:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n", "The top level of {path} is a str"),
        (f"- {SECRET}\n", "is a list, not a mapping"),
        (f"db_password: {SECRET}\n  bad: [x\n", "is not valid YAML: mapping values are not allowed here at line 2, column 6"),
        (f"password: {SECRET}\npassword: {SECRET}-2\n", "found a duplicate key at line 2, column 1"),
        (f"a:\n\tb: {SECRET}\n", "cannot start any token at line 2, column 1"),
        (f"a: {SECRET}\x00\n", "a character YAML does not allow (#x0000) at line 1, column 28"),
        (f"a: *{SECRET}\n", "found undefined alias at line 1, column 4"),
        (f'a: "{SECRET}\n', "found unexpected end of stream at line 2, column 1"),
        (f"{{{SECRET}: [1, 2}}\n", "is not valid YAML"),
        (f"a: !!python/object:os.system {SECRET}\n", "could not determine a constructor for the tag at line 1, column 4"),
    ],
)
def test_errors_never_quote_the_file(capsys, tmp_path, content, expect):
    path = tmp_path / "values.yaml"
    path.write_text(content)
    result = assert_clean_failure(capsys, tmp_path, expect.format(path=path), path=str(path), set={"a": 1})
    assert str(path) in result["msg"]


def test_invalid_utf8_names_the_position_only(capsys, tmp_path):
    path = tmp_path / "values.yaml"
    path.write_bytes(f"ok: 1\npassword: {SECRET}".encode() + b"\xff\xfe\n")
    assert_clean_failure(capsys, tmp_path, "is not UTF-8 text (an invalid byte at line 2, column 35)", path=str(path), set={"a": 1})


def test_symlink_to_a_passwd_like_file_does_not_leak_it(capsys, tmp_path):
    target = tmp_path / "passwd"
    target.write_text(f"root:x:0:0:{SECRET}:/root:/bin/bash\n")
    (tmp_path / "values.yaml").symlink_to(target)
    assert_clean_failure(capsys, tmp_path, "is a str, not a mapping", path=str(tmp_path / "values.yaml"), set={"a": 1})


def test_failed_validate_leaves_everything_as_it_was(capsys, values):
    assert_clean_failure(capsys, values.parent, "validate command failed (rc=1)", path=str(values), set={"grafana.enabled": True}, validate="false %s")


# -- what does work on the same files ----------------------------------------------------------


def test_symlink_is_written_through_and_kept(capsys, tmp_path):
    real = tmp_path / "real" / "values.yaml"
    real.parent.mkdir()
    real.write_text(VALUES)
    real.chmod(0o640)
    link = tmp_path / "values.yaml"
    link.symlink_to(real)
    result, failed, raw = run(capsys, path=str(link), set={"grafana.enabled": True}, backup=True)
    assert not failed and result["changed"]
    assert os.readlink(link) == str(real)
    assert real.read_text() == VALUES.replace("enabled: false", "enabled: true")
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert Path(result["backup_file"]).parent == real.parent and Path(result["backup_file"]).read_text() == VALUES
    assert SECRET not in json.dumps(result["changes"])


def test_symbolic_mode_and_numeric_owner(capsys, values):
    values.chmod(0o644)
    args = {"path": str(values), "set": {"grafana.enabled": True}, "mode": "u=rw,g=r,o="}
    if IS_ROOT:
        args.update(owner="1234", group="2345")
    result, failed, _raw = run(capsys, **args)
    assert not failed and result["changed"]
    st = values.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    if IS_ROOT:
        assert (st.st_uid, st.st_gid) == (1234, 2345)
    again, failed, _raw = run(capsys, **args)
    assert not failed and again["changed"] is False


@pytest.mark.skipif(not IS_ROOT, reason="chown needs root")
def test_owner_of_an_edited_file_is_kept(capsys, values):
    os.chown(values, 1234, 1234)
    values.chmod(0o600)
    result, failed, _raw = run(capsys, path=str(values), set={"grafana.enabled": True})
    assert not failed and result["changed"]
    st = values.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 1234, 0o600)
