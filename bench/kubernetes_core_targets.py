"""Run kubernetes.core's own k8s_* integration targets against kubesim: a fidelity measure.

Usage:
    .venv/bin/python bench/kubernetes_core_targets.py /path/to/kubernetes.core-source \
        [--targets k8s_diff,k8s_info] [--timeout 1200] [--kubesim-src DIR] [--wheelhouse DIR] [--logs DIR]

The argument is an unpacked kubernetes.core source tree (e.g. `git archive 6.2.0` of
ansible-collections/kubernetes.core); this script never downloads anything. Each target gets a
fresh kubesim (API + behaviour) started through the launcher (`python -m kubesim`), runs its own
`runme.sh` with a timeout, and the script prints pass/fail per target and the totals.
`--kubesim-src DIR` puts another kubesim package first on PYTHONPATH (a checkout of an older
commit, to measure "before"). The modules come from the kubernetes.core that ansible-playbook
finds first: the source tree itself, copied to a temporary ansible_collections/kubernetes/core as
ansible-test lays it out (its short module names resolve there), so use the tag matching the
installed kubernetes.core (6.2.0 with ansible 12.3.0).

Selected targets: the k8s_* targets that need no container runtime, no network and no RBAC
enforcement. Excluded, and why:
    k8s_copy, k8s_exec, k8s_log   exec/attach/logs of running containers (kubesim runs none)
    k8s_manifest_url              downloads manifests from GitHub at run time
    k8s_user_impersonation        needs RBAC enforcement (kubesim authorizes every request)
    k8s_check_mode                only tests old kubernetes client releases pip-installed into
                                  virtualenvs at run time
    k8s_validate                  tests the kubernetes-validate library, not the API server
    helm*, lookup_kustomize       other tools (helm binary versions, kustomize), not k8s_*
k8s_apply's last block pip-installs old kubernetes client releases into virtualenvs: it needs
`virtualenv` on PATH and those wheels in `--wheelhouse DIR` (pip runs with --no-index).

Known harness limit: each target runs with HOME set to its work directory, but Ansible expands a
`~` in a `copy` destination through the user's passwd entry (`~<user>`), not HOME. k8s_info's
api-server-caching part deletes ~/.kube/config (HOME) and restores it with `copy` (passwd home),
so the restore lands in the real user's ~/.kube/config and the target's later tasks find no
kubeconfig: k8s_info fails there for that reason, not because of kubesim (and it overwrites the
real ~/.kube/config). Run it as a user whose home is a scratch directory to measure it.

Not part of `make test`: it takes tens of minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TARGETS = [
    "k8s_access_review", "k8s_append_hash", "k8s_apply", "k8s_cluster_info", "k8s_crd", "k8s_delete",
    "k8s_diff", "k8s_drain", "k8s_full", "k8s_gc", "k8s_generate_name", "k8s_hide_fields", "k8s_info",
    "k8s_json_patch", "k8s_json_patch_hide_fields", "k8s_label_selectors", "k8s_lists", "k8s_merge_type",
    "k8s_patched", "k8s_rollback", "k8s_scale", "k8s_taint", "k8s_template", "k8s_waiter",
]


def start_kubesim(work: Path, python: str, kubesim_src: str | None) -> tuple[Path, Path, dict[str, str]]:
    env = dict(os.environ)
    if kubesim_src:
        env["PYTHONPATH"] = kubesim_src + os.pathsep + env.get("PYTHONPATH", "")
    # HOME is the work directory: ~/.kube/config is where ansible-test's cloud set-up puts it (k8s_full copies it)
    kubeconfig, pidfile = work / ".kube" / "config", work / "kubesim.pid"
    subprocess.run([python, "-m", "kubesim", "--kubeconfig", str(kubeconfig), "--wait-ready", "--pidfile", str(pidfile)],
                   env=env, check=True, stdout=subprocess.DEVNULL, timeout=120)
    return kubeconfig, pidfile, env


def stop_kubesim(python: str, pidfile: Path, env: dict[str, str]) -> None:
    subprocess.run([python, "-m", "kubesim", "--stop", str(pidfile)], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def run_target(src: Path, target: str, args: argparse.Namespace, logdir: Path) -> tuple[str, float]:
    tdir = src / "ansible_collections" / "kubernetes" / "core" / "tests" / "integration" / "targets" / target
    if not (tdir / "runme.sh").is_file():
        return "missing", 0.0
    python = args.python
    with tempfile.TemporaryDirectory(prefix=f"kcore-{target}-") as tmp:
        work = Path(tmp)
        kubeconfig, pidfile, kenv = start_kubesim(work, python, args.kubesim_src)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        bindir = str(Path(python).parent)
        env.update({
            "PATH": bindir + os.pathsep + env.get("PATH", ""),
            "KUBECONFIG": str(kubeconfig), "K8S_AUTH_KUBECONFIG": str(kubeconfig),
            "ANSIBLE_PYTHON_INTERPRETER": python, "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "HOME": str(work),
            "PIP_NO_INDEX": "1", "ANSIBLE_COLLECTIONS_PATH": str(src),
        })
        if args.wheelhouse:
            env["PIP_FIND_LINKS"] = args.wheelhouse
        start = time.monotonic()
        with open(logdir / f"{target}.log", "wb") as log:
            proc = subprocess.Popen(["bash", "runme.sh", "-e", f"ansible_python_interpreter={python}"],
                                    cwd=tdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(timeout=args.timeout)
                result = "pass" if rc == 0 else "FAIL"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                result = "TIMEOUT"
        elapsed = time.monotonic() - start
        stop_kubesim(python, pidfile, kenv)
        for log_file in work.glob("**/kubesim.log"):
            shutil.copy(log_file, logdir / f"{target}.kubesim.log")
    return result, elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("source", help="unpacked kubernetes.core source tree (never downloaded by this script)")
    ap.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help="comma-separated target names")
    # k8s_info alone waits twice for its k8s_wait_timeout (400 s) for pods that never appear, by design
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per target (default 1200: k8s_info takes about 15 minutes)")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"), help="the venv python (ansible, kubesim)")
    ap.add_argument("--kubesim-src", default=None, help="directory put first on PYTHONPATH to run another kubesim")
    ap.add_argument("--wheelhouse", default=None, help="local wheels for the targets' pip steps (pip runs with --no-index)")
    ap.add_argument("--logs", default=None, help="directory for per-target logs (default: a new temporary directory)")
    args = ap.parse_args()
    src = Path(args.source).resolve()
    if not (src / "tests" / "integration" / "targets").is_dir():
        ap.error(f"{src} is not a kubernetes.core source tree (no tests/integration/targets): unpack the tag there")
    # as ansible-test does: the collection under test sits at ansible_collections/kubernetes/core, so the
    # targets' short module names (k8s_cluster_info, ...) resolve to it
    tree = Path(tempfile.mkdtemp(prefix="kcore-tree-"))
    shutil.copytree(src, tree / "ansible_collections" / "kubernetes" / "core", symlinks=True)
    logdir = Path(args.logs or tempfile.mkdtemp(prefix="kcore-logs-"))
    logdir.mkdir(parents=True, exist_ok=True)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    print(f"kubernetes.core targets from {src} against kubesim; logs in {logdir}", flush=True)
    src = tree
    results = {}
    for t in targets:
        results[t] = run_target(src, t, args, logdir)
        print(f"{t:32s} {results[t][0]:8s} {results[t][1]:7.1f}s", flush=True)
    shutil.rmtree(tree, ignore_errors=True)
    passed = sum(1 for outcome, _seconds in results.values() if outcome == "pass")
    print(f"TOTAL: {passed}/{len(results)} passed ({100.0 * passed / max(1, len(results)):.0f}%)")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
