"""Build the collection artifact and prove it is clean and installable.

1. ``ansible-galaxy collection build`` into a temporary directory;
2. the tarball holds no virtualenv, caches, test output or executable binaries, and no simulator
   (tools/kubesim, or any kubesim package), no simulator tests and no bench scripts;
3. ``ansible-galaxy collection install`` of that tarball into a temporary path;
4. ``ansible-doc`` works for every module of the installed artifact, and for each role
   (``-t role``, which reads meta/argument_specs.yml).
Exits non-zero with a message naming what is wrong.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FORBIDDEN_PARTS = {".venv", ".collections", "__pycache__", ".pytest_cache", ".ruff_cache", ".git", "output", ".kubesim",
                   "kubesim", "tools", "bench"}   # the simulator, its tests and the benchmarks are for development only
ELF = b"\x7fELF"


def run(cmd: list[str], **kw) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"build-check: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dist"
        run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(ROOT)])
        tarballs = list(out.glob("okemesh-istio-*.tar.gz"))
        if len(tarballs) != 1:
            raise SystemExit(f"build-check: expected one artifact, got {tarballs}")
        problems = []
        with tarfile.open(tarballs[0]) as tar:
            names = tar.getnames()
            for member in tar.getmembers():
                parts = set(Path(member.name).parts)
                if parts & FORBIDDEN_PARTS or member.name.endswith((".pyc", ".tar.gz")):
                    problems.append(f"unwanted path in artifact: {member.name}")
                if member.isfile():
                    fh = tar.extractfile(member)
                    if fh is not None and fh.read(4) == ELF:
                        problems.append(f"binary executable in artifact: {member.name}")
        for required in ("MANIFEST.json", "FILES.json", "plugins/modules/helm_values.py", "roles/istio/tasks/main.yml"):
            if required not in names:
                problems.append(f"missing from artifact: {required}")
        if problems:
            raise SystemExit("build-check:\n  " + "\n  ".join(problems))
        dest = Path(tmp) / "installed"
        # outside the repository's ansible.cfg: its collections_path already holds okemesh.istio (the clone)
        empty_cfg = Path(tmp) / "ansible.cfg"
        empty_cfg.write_text("[defaults]\n")
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(dest), ANSIBLE_CONFIG=str(empty_cfg), ANSIBLE_NOCOLOR="1")
        run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force", "-p", str(dest), str(tarballs[0])],
            env=env, cwd=tmp)
        installed = dest / "ansible_collections" / "okemesh" / "istio"
        modules = sorted(p.stem for p in (installed / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))
        roles = sorted(p.name for p in (installed / "roles").iterdir() if p.is_dir())
        for module in modules:
            text = run([str(BIN / "ansible-doc"), f"okemesh.istio.{module}"], env=env, cwd=tmp)
            if "okemesh.istio." + module not in text or "EXAMPLES" not in text:
                raise SystemExit(f"build-check: ansible-doc okemesh.istio.{module} printed no documentation")
        for role in roles:
            text = run([str(BIN / "ansible-doc"), "-t", "role", f"okemesh.istio.{role}"], env=env, cwd=tmp)
            if not re.search(r"ENTRY POINT: \*?main\*? - ", text):
                raise SystemExit(f"build-check: ansible-doc -t role okemesh.istio.{role} shows no main entry point")
        print(f"build-check: {tarballs[0].name}: {len(names)} files, clean; installed; ansible-doc ok for "
              f"modules {', '.join(modules)} and roles {', '.join(roles)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
