"""Wall time of site.yml against kubesim (the project's Kubernetes API simulator).

Measures, on fresh simulators:
  * one cluster: first run (install) and second run (idempotent re-run, target < 60 s);
  * three clusters in parallel (inventories/sim/three-clusters.yml, three kubesim instances)
    vs one cluster, first run (target: < 1.5x the single-cluster time).

Prints the numbers and writes them as JSON to bench/results/site.json. Not a test: no assertion.

    .venv/bin/python bench/bench_site.py [--skip-multi] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubesim.launcher import start as start_kubesim

from tests.fixtures.stage_istio_release import staged_for_tests

REPO = Path(__file__).resolve().parents[1]


BIN = Path(sys.executable).parent
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def run_site(inventory: Path, env_extra: dict[str, str], workdir: Path) -> tuple[float, dict[str, dict[str, int]], str]:
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    env.update(env_extra)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["OKEMESH_SIM_RELEASE_DIR"] = str(staged_for_tests())
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[name] = str(workdir / name.lower())
    cmd = [str(BIN / "ansible-playbook"), "-i", str(inventory), "site.yml"]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
             for m in RECAP.findall(proc.stdout)}
    if proc.returncode != 0:
        (workdir / "failed-run.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        raise SystemExit(f"site.yml failed (rc={proc.returncode}); log: {workdir / 'failed-run.log'}\n{proc.stdout[-3000:]}")
    return elapsed, recap, proc.stdout


def one_cluster(tmp: Path) -> dict[str, float | int]:
    sim = start_kubesim(tmp / "sim")
    try:
        env = {"OKEMESH_SIM_KUBECONFIG": sim.kubeconfig}
        first, recap1, _out1 = run_site(REPO / "inventories/sim/hosts.yml", env, tmp)
        second, recap2, _out2 = run_site(REPO / "inventories/sim/hosts.yml", env, tmp)
    finally:
        sim.stop()
    return {"first_s": round(first, 1), "second_s": round(second, 1),
            "first_changed": recap1["sim-1"]["changed"], "second_changed": recap2["sim-1"]["changed"]}


def three_clusters(tmp: Path) -> dict[str, float | int]:
    sims = [start_kubesim(tmp / f"sim-{n}") for n in (1, 2, 3)]
    try:
        env = {f"OKEMESH_SIM_KUBECONFIG_{n}": s.kubeconfig for n, s in enumerate(sims, start=1)}
        first, recap, _out = run_site(REPO / "inventories/sim/three-clusters.yml", env, tmp)
    finally:
        for s in sims:
            s.stop()
    return {"first_s": round(first, 1), "hosts_changed": sum(r["changed"] for r in recap.values()), "hosts": len(recap)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-multi", action="store_true", help="only the single-cluster runs")
    parser.add_argument("--repeat", type=int, default=1, help="repeat each measurement and report the median")
    args = parser.parse_args()

    singles, multis = [], []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="okemesh-bench-") as d:
            singles.append(one_cluster(Path(d)))
            print(f"[{i + 1}/{args.repeat}] one cluster: {singles[-1]}", flush=True)
            if not args.skip_multi:
                multis.append(three_clusters(Path(d)))
                print(f"[{i + 1}/{args.repeat}] three clusters: {multis[-1]}", flush=True)

    first = statistics.median(s["first_s"] for s in singles)
    second = statistics.median(s["second_s"] for s in singles)
    result = {"runs": args.repeat, "one_cluster_first_s": first, "one_cluster_second_s": second,
              "second_run_changed": [s["second_changed"] for s in singles], "cpu_count": os.cpu_count()}
    print(f"site.yml, one cluster, first run : {first:7.1f} s")
    print(f"site.yml, one cluster, second run: {second:7.1f} s   (target < 60 s; changed={result['second_run_changed']})")
    if multis:
        three = statistics.median(m["first_s"] for m in multis)
        result.update({"three_clusters_first_s": three, "three_vs_one": round(three / first, 2)})
        print(f"site.yml, three clusters, first  : {three:7.1f} s")
        print(f"three clusters / one cluster     : {three / first:7.2f} x (target < 1.5 x)")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "site.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out / 'site.json'}")


if __name__ == "__main__":
    main()
