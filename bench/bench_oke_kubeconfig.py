"""Wall time: okemesh.istio.oke_kubeconfig vs `oci ce cluster create-kubeconfig`, same local OCI stub.

Both run as a fresh process per run (what a playbook task or a shell step costs), writing a new
kubeconfig file each time; prints the median and min of N runs. Also prints the module's
in-process service time (no interpreter start-up). Usage:

    .venv/bin/python bench/bench_oke_kubeconfig.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.oci_stub.identity import CLUSTER, make_identity
from tests.oci_stub.server import OCIStub

REPO = Path(__file__).resolve().parents[1]


BIN = Path(sys.executable).parent
MODULE = REPO / "plugins" / "modules" / "oke_kubeconfig.py"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-oke-"))
    env = dict(os.environ, HOME=str(work), PYTHONPATH=f"{REPO / '.collections'}", OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING="True",
               SUPPRESS_LABEL_WARNING="True")
    results: dict[str, list[float]] = {"module (process)": [], "oci CLI (process)": [], "module service (in-process)": []}
    with OCIStub() as stub:
        stub.add_cluster(CLUSTER)
        ident = make_identity(stub, work / "oci")
        (work / ".oci").mkdir()
        (work / ".oci" / "config").write_text(ident.config_file.read_text())
        from ansible_collections.okemesh.istio.plugins.module_utils._oci import ensure_oke_kubeconfig

        for i in range(args.runs):
            mod_args = work / f"args-{i}.json"
            mod_args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"cluster_id": CLUSTER, "dest": str(work / f"mod-{i}"),
                                                                    "service_endpoint": stub.url, "retries": 0}}))
            results["module (process)"].append(timed([sys.executable, str(MODULE), str(mod_args)], env))
            results["oci CLI (process)"].append(timed([str(BIN / "oci"), "ce", "cluster", "create-kubeconfig", "--cluster-id", CLUSTER,
                                                       "--file", str(work / f"cli-{i}"), "--endpoint", stub.url], env))
            params = dict(cluster_id=CLUSTER, endpoint="PUBLIC_ENDPOINT", dest=str(work / f"svc-{i}"), merge=True, set_current_context=True,
                          credential="exec", exec_auth_args=True, auth_type="api_key", config_file_location=str(ident.config_file),
                          service_endpoint=stub.url, timeout=30.0, retries=0)
            start = time.perf_counter()
            ensure_oke_kubeconfig(params)
            results["module service (in-process)"].append(time.perf_counter() - start)
        assert len([r for r in stub.requests if r["status"] == 200]) == 3 * args.runs
    print(f"oke_kubeconfig vs oci ce cluster create-kubeconfig against the local OCI stub, {args.runs} runs each")
    for name, values in results.items():
        print(f"  {name:30s} median {statistics.median(values) * 1000:8.1f} ms   min {min(values) * 1000:8.1f} ms")
    ratio = statistics.median(results["oci CLI (process)"]) / statistics.median(results["module (process)"])
    print(f"  CLI median / module median = {ratio:.2f} (>= 1.0 means the module is at least as fast)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
