"""The file service behind helm_values (_values_file.edit_values_file): locking, change detection, modes.

Real processes, real flock, real files; the only stand-in is a "careless writer" run as the
validate command (which runs between the read and the replace), to change the file at the
worst moment.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import shlex
import stat
import subprocess
import sys
import threading
import time

import pytest
from ruamel.yaml import YAML

from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError, ValuesFileError
from ansible_collections.okemesh.istio.plugins.module_utils._values_file import apply_mode, edit_values_file, parse_mode

BASE = "# shared values\nglobal:\n  hub: docker.io/istio  # upstream\n"
# widens the window between the read and the replace, so an unlocked read-modify-write would lose edits
SLOW_VALIDATE = "%s -c 'import time; time.sleep(0.05)' %%s" % shlex.quote(sys.executable)


def load(path):
    return YAML(typ="safe", pure=True).load(path.read_text())


def _worker(path, index, barrier, results):
    barrier.wait()
    try:
        outcome = edit_values_file(path=path, set_values={"key%d" % index: index}, validate=SLOW_VALIDATE, lock_timeout=120)
        results.put((index, "changed" if outcome.result["changed"] else "unchanged"))
    except ValuesFileError as err:
        results.put((index, "error: " + err.msg))


def run_parallel(path, count=10):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(count)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(path), i, barrier, results)) for i in range(count)]
    for proc in procs:
        proc.start()
    outcome = dict(results.get(timeout=240) for _proc in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return outcome


@pytest.mark.parametrize("existing", [True, False], ids=["existing-file", "new-file"])
def test_ten_parallel_edits_all_land(tmp_path, existing):
    path = tmp_path / "values.yaml"
    if existing:
        path.write_text(BASE)
    outcome = run_parallel(path)
    assert outcome == dict((i, "changed") for i in range(10))
    data = load(path)
    assert {k: v for k, v in data.items() if k.startswith("key")} == {"key%d" % i: i for i in range(10)}
    if existing:
        assert path.read_text().startswith(BASE)  # comments and layout of the shared part kept
        assert data["global"] == {"hub": "docker.io/istio"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["values.yaml"]  # no temporary file left


def careless_writer(path, marker, times):
    """A validate command that appends a key to ``path`` without any lock (like an editor), ``times`` times."""
    code = (
        "import os, sys\n"
        "marker, path, times = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
        "count = int(open(marker).read()) if os.path.exists(marker) else 0\n"
        "if count < times:\n"
        "    open(path, 'a').write('other%d: true\\n' % count)\n"
        "    open(marker, 'w').write(str(count + 1))\n"
    )
    return "%s -c %s %s %s %d %%s" % (shlex.quote(sys.executable), shlex.quote(code), shlex.quote(str(marker)), shlex.quote(str(path)), times)


def test_change_by_another_writer_is_merged_not_overwritten(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(BASE)
    outcome = edit_values_file(path=str(path), set_values={"mine": 1}, validate=careless_writer(path, tmp_path / "count", 1))
    assert outcome.result["changed"]
    assert path.read_text() == BASE + "other0: true\nmine: 1\n"


def test_a_writer_that_keeps_changing_the_file_fails_the_run_clearly(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(BASE)
    with pytest.raises(ValuesFileError, match=r"was changed by another program while it was being edited \(3 times in a row\); nothing was written"):
        edit_values_file(path=str(path), set_values={"mine": 1}, validate=careless_writer(path, tmp_path / "count", 100))
    assert path.read_text() == BASE + "other0: true\nother1: true\nother2: true\n"  # the other writer's changes, none of ours
    assert sorted(p.name for p in tmp_path.iterdir()) == ["count", "values.yaml"]


def test_lock_timeout_fails_clearly_and_check_mode_does_not_wait(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(BASE)
    with open(path) as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(ValuesFileError, match=r"is locked by another edit for more than 0 s \(lock_timeout\); nothing was changed"):
            edit_values_file(path=str(path), set_values={"mine": 1}, lock_timeout=0)
        predicted = edit_values_file(path=str(path), set_values={"mine": 1}, check_mode=True)
        assert predicted.result["changed"] and predicted.result["changes"][0]["path"] == "mine"
    assert path.read_text() == BASE


def test_waiting_for_the_lock_then_editing_the_replaced_file(tmp_path):
    """The lock holder replaces the file (new inode) before it lets go: the waiter must edit the new content."""
    path = tmp_path / "values.yaml"
    path.write_text(BASE)
    holder = open(path)  # noqa: SIM115 - held across the thread below
    fcntl.flock(holder, fcntl.LOCK_EX)

    def replace_then_release():
        time.sleep(0.3)
        tmp = tmp_path / "next.yaml"
        tmp.write_text(BASE + "theirs: 1\n")
        os.rename(tmp, path)
        holder.close()

    thread = threading.Thread(target=replace_then_release)
    thread.start()
    try:
        outcome = edit_values_file(path=str(path), set_values={"mine": 2}, lock_timeout=30)
    finally:
        thread.join()
    assert outcome.result["changed"]
    assert path.read_text() == BASE + "theirs: 1\nmine: 2\n"


@pytest.mark.parametrize(
    "spec",
    ["u=rw,g=r,o=", "u+x", "go-rwx", "a+r", "ug=rwx,o=rx", "g=u", "o=g", "u-w,g+w", "a=", "+x", "u=rwx,g=rx,o=r,g-x", "a+X", "o+t", "u+s,g+s"],
)
@pytest.mark.parametrize("start", [0o644, 0o600, 0o750])
def test_symbolic_modes_match_chmod(tmp_path, spec, start):
    path = tmp_path / "f"
    path.write_text("")
    path.chmod(start)
    subprocess.run(["chmod", spec, str(path)], check=True)
    assert apply_mode(start, parse_mode(spec)) == stat.S_IMODE(path.stat().st_mode), spec


@pytest.mark.parametrize(("mode", "expected"), [("0640", 0o640), ("640", 0o640), ("0o640", 0o640), (0o600, 0o600), ("u=rw", "u=rw"), (None, None)])
def test_parse_mode_accepts(mode, expected):
    assert parse_mode(mode) == expected


@pytest.mark.parametrize("mode", ["abc", "0999", "u+z", 99999, "0100000", "", True, "rw"])
def test_parse_mode_refuses(mode):
    with pytest.raises(InputError):
        parse_mode(mode)


def test_new_file_gets_the_umask_default_or_the_mode_asked_for(tmp_path):
    old = os.umask(0o027)
    try:
        edit_values_file(path=str(tmp_path / "a.yaml"), set_values={"a": 1})
        edit_values_file(path=str(tmp_path / "b.yaml"), set_values={"a": 1}, mode="u=rw,go=")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.yaml").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "b.yaml").stat().st_mode) == 0o600
