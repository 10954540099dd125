"""Run ansible-playbook (and read its PLAY RECAP) the way the playbook-level tests do: from the
repository root, with the venv's interpreter and tools, the repository's ansible.cfg, and the
stand-in Istio release staged under tests/output/istio-release."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.fixtures.stage_istio_release import staged_for_tests

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.M,
)


@dataclasses.dataclass
class PlaybookResult:
    rc: int
    stdout: str
    stderr: str
    recap: dict[str, dict[str, int]]

    def changed(self, host: str = "localhost") -> int:
        return self.recap[host]["changed"]

    def failed(self, host: str = "localhost") -> int:
        return self.recap[host]["failed"]

    def __str__(self) -> str:  # what pytest shows when an assertion on the result fails
        return f"rc={self.rc}\n--- stdout ---\n{self.stdout[-12000:]}\n--- stderr ---\n{self.stderr[-4000:]}"

    __repr__ = __str__


def playbook_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_RETRY_FILES_ENABLED"] = "0"
    # the modules run with this interpreter (the venv's), not whatever discovery finds first
    env.setdefault("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
    env.setdefault("ANSIBLE_LOCAL_TEMP", str(REPO / "tests" / "output" / "ansible-tmp"))
    env.pop("KUBECONFIG", None)
    env.setdefault("OKEMESH_SIM_RELEASE_DIR", str(staged_for_tests()))
    if extra:
        env.update(extra)
    return env


def run_playbook(
    playbook: str | os.PathLike[str],
    *,
    inventory: str | os.PathLike[str] | None = None,
    extra_vars: dict | None = None,
    check: bool = False,
    diff: bool = False,
    tags: str | None = None,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    timeout: float = 900,
) -> PlaybookResult:
    """Run ansible-playbook from the repository root and parse the PLAY RECAP."""
    cmd = [str(BIN / "ansible-playbook"), str(playbook)]
    cmd += ["-i", str(inventory) if inventory else "localhost,"]
    if inventory is None:
        cmd += ["-c", "local"]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if tags:
        cmd += ["--tags", tags]
    cmd += args or []
    run_env = playbook_env(env)
    # Every run gets a temporary directory of its own, as a fresh machine or an AWX job container has:
    # kubernetes.core keeps its API discovery cache in $TMPDIR keyed by the API server's host:port only,
    # and a simulator of an earlier test may have served a different API on the same port.
    own_tmp = None
    if not (env or {}).get("TMPDIR"):
        scratch = REPO / "tests" / "output" / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        own_tmp = run_env["TMPDIR"] = tempfile.mkdtemp(prefix="run-", dir=scratch)
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        if own_tmp:
            shutil.rmtree(own_tmp, ignore_errors=True)
    recap = {
        m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"} for m in RECAP.finditer(proc.stdout)
    }
    return PlaybookResult(proc.returncode, proc.stdout, proc.stderr, recap)
