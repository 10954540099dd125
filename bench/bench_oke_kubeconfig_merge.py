"""Wall time of okemesh.istio.oke_kubeconfig merging into a large kubeconfig, and of its input guards.

Runs the module's service in-process against the local OCI stub (tests/oci_stub): a merge with
diff into a kubeconfig of N clusters and N users (with comments), a second run that finds
nothing to change, and the time to refuse a 491-byte alias bomb and a deeply nested file.
Prints the median and min of the runs. Usage:

    .venv/bin/python bench/bench_oke_kubeconfig_merge.py [--clusters 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / ".collections")]

from tests.oci_stub.identity import CLUSTER, make_identity  # noqa: E402
from tests.oci_stub.server import OCIStub  # noqa: E402


def big_kubeconfig(count: int) -> str:
    ca = base64.b64encode(hashlib.sha256(b"ca").digest() * 40).decode()
    parts = ["# a large kubeconfig\napiVersion: v1\nkind: Config\nclusters:\n"]
    parts += [f"- name: c{i}  # cluster {i}\n  cluster:\n    server: https://10.0.{i // 250}.{i % 250}:6443\n    certificate-authority-data: {ca}\n"
              for i in range(count)]
    parts += ["users:\n"] + [f"- name: u{i}\n  user:\n    token: t{i}\n" for i in range(count)]
    parts += ["contexts:\n"] + [f"- name: c{i}\n  context: {{cluster: c{i}, user: u{i}}}\n" for i in range(count)]
    return "".join(parts) + "current-context: c0\n"


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from ansible_collections.okemesh.istio.plugins.module_utils import _kubeconfig as kc
    from ansible_collections.okemesh.istio.plugins.module_utils._oci import ensure_oke_kubeconfig

    work = Path(tempfile.mkdtemp(prefix="bench-okk-merge-"))
    text = big_kubeconfig(args.clusters)
    results: dict[str, list[float]] = {"merge with diff (changed)": [], "second run (unchanged)": [], "alias bomb refused": [],
                                       "100,000 nested [ refused": []}
    bomb = "\n".join(['l0: &l0 ["x", "x"]'] + [f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]" for n in range(1, 9)]) + "\n"
    deep = "a: " + "[" * 100000 + "]" * 100000 + "\n"
    with OCIStub() as stub:
        stub.add_cluster(CLUSTER)
        ident = make_identity(stub, work / "oci")
        for run in range(args.runs):
            dest = work / f"config-{run}"
            dest.write_text(text)
            params = dict(cluster_id=CLUSTER, endpoint="PUBLIC_ENDPOINT", dest=str(dest), merge=True, set_current_context=True, credential="exec",
                          exec_auth_args=True, auth_type="api_key", config_file_location=str(ident.config_file), service_endpoint=stub.url,
                          timeout=30.0, retries=0)
            results["merge with diff (changed)"].append(timed(lambda p=params: ensure_oke_kubeconfig(p, want_diff=True)))
            results["second run (unchanged)"].append(timed(lambda p=params: ensure_oke_kubeconfig(p)))
            for name, bad in (("alias bomb refused", bomb), ("100,000 nested [ refused", deep)):
                start = time.perf_counter()
                try:
                    kc.parse(bad, keep_layout=True)
                except kc.InputError:
                    results[name].append(time.perf_counter() - start)
                else:
                    raise SystemExit(f"{name}: not refused")
    print(f"oke_kubeconfig service, in-process, kubeconfig of {args.clusters} clusters ({len(text) / 1e6:.1f} MB), {args.runs} runs")
    for name, values in results.items():
        print(f"  {name:28s} median {statistics.median(values) * 1000:9.1f} ms   min {min(values) * 1000:9.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
