"""Benchmark okemesh.istio.injection_check against kubesim (the Kubernetes API simulator).

Builds a cluster of N pods in M namespaces (default 5,000 in 50) with the Istio control plane
objects the check reads, then times, in the same run and against the same simulator:

* ``ansible localhost -m okemesh.istio.injection_check`` (ad hoc, the whole module round trip);
* ``kubectl get pods -A -o json`` (the reference LIST);
* the module's service in-process (LIST + classify, without Ansible's start-up), and a raw
  LIST decoded with json.loads vs the kubernetes client's model deserialisation.

Prints one line per measurement (median of --repeat runs) and the two ratios the issue asks
for (module < 3 s and < 3x kubectl).  Numbers only: it asserts nothing.

    .venv/bin/python bench/bench_injection_check.py [--pods 5000] [--namespaces 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubesim.launcher import start as start_kubesim

REPO = Path(__file__).resolve().parents[1]


BIN = Path(sys.executable).parent
ISTIOD_IMAGE = "docker.io/istio/pilot:1.28.0"
PROXY_IMAGE = "docker.io/istio/proxyv2:1.28.0"


def pod_manifest(ns: str, i: int, kind: str) -> dict:
    """A pod as the injector and kubelet would have left it (no controller needed)."""
    name = f"app-{i // 4}-5f6d7c8b9-{i:05d}"
    meta = {
        "name": name,
        "namespace": ns,
        "labels": {"app": f"app-{i // 4}", "pod-template-hash": "5f6d7c8b9"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"app-{i // 4}-5f6d7c8b9",
                             "uid": f"rs-{ns}-{i // 4}", "controller": True}],
    }
    app = {"name": "app", "image": "registry.example.com/app:1.0", "ports": [{"containerPort": 8080}],
           "env": [{"name": "MODE", "value": "bench"}], "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
    spec: dict = {"containers": [app], "serviceAccountName": "default", "nodeName": f"node-{i % 3}"}
    status: dict = {"phase": "Running", "podIP": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0, "image": app["image"],
                                           "state": {"running": {"startedAt": "2026-11-26T10:00:00Z"}}}]}
    if kind in ("native", "skew"):
        image = PROXY_IMAGE if kind == "native" else "docker.io/istio/proxyv2:1.27.3"
        meta["annotations"] = {"sidecar.istio.io/status": json.dumps({"initContainers": ["istio-proxy"], "revision": "default"})}
        spec["initContainers"] = [{"name": "istio-proxy", "image": image, "restartPolicy": "Always",
                                   "args": ["proxy", "sidecar"], "ports": [{"containerPort": 15090, "name": "http-envoy-prom"}]}]
        status["initContainerStatuses"] = [{"name": "istio-proxy", "ready": True, "started": True, "image": image,
                                            "state": {"running": {"startedAt": "2026-11-26T10:00:00Z"}}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def populate(sim, pods: int, namespaces: int) -> float:
    """Create namespaces, control plane and pods through the API; returns seconds spent."""
    start = time.monotonic()

    def post(path, body):
        status, resp = sim.request("POST", path, body)
        if status not in (200, 201):
            raise RuntimeError(f"POST {path}: HTTP {status}: {resp}")

    post("/api/v1/namespaces", {"metadata": {"name": "istio-system"}})
    for n in range(namespaces):
        post("/api/v1/namespaces", {"metadata": {"name": f"team-{n:02d}", "labels": {"istio-injection": "enabled"}}})
    # pods first (no injector yet, so kubesim's admission leaves them as written), then the control plane
    per_ns = pods // namespaces
    jobs = []
    for n in range(namespaces):
        ns = f"team-{n:02d}"
        for i in range(per_ns):
            kind = "skew" if i == 0 else "native"
            jobs.append((f"/api/v1/namespaces/{ns}/pods", pod_manifest(ns, i, kind)))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda job: post(*job), jobs))
    post("/apis/apps/v1/namespaces/istio-system/deployments", {
        "metadata": {"name": "istiod", "labels": {"app": "istiod", "istio.io/rev": "default"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "istiod"}},
                 "template": {"metadata": {"labels": {"app": "istiod", "istio.io/rev": "default", "sidecar.istio.io/inject": "false"}},
                              "spec": {"containers": [{"name": "discovery", "image": ISTIOD_IMAGE}]}}}})
    post("/api/v1/namespaces/istio-system/services", {
        "metadata": {"name": "istiod"},
        "spec": {"selector": {"app": "istiod"}, "ports": [{"name": "https-webhook", "port": 443, "targetPort": 15017}]}})
    post("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", {
        "metadata": {"name": "istio-sidecar-injector", "labels": {"app": "sidecar-injector", "istio.io/rev": "default"}},
        "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                      "clientConfig": {"caBundle": "LS0tLS1CRUdJTi0tLS0t",
                                       "service": {"name": "istiod", "namespace": "istio-system", "port": 443, "path": "/inject"}}}]})
    return time.monotonic() - start


CPU: dict[str, list[float]] = {}


def timed(cmd: list[str], env: dict[str, str], label: str = "") -> tuple[float, subprocess.CompletedProcess]:
    """Wall time of a command; its CPU time (user+sys, with its children) goes to CPU[label]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(label, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--serve", action="store_true", help="populate, print the kubeconfig path, keep serving until Ctrl-C")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-injection-"))
    sim = start_kubesim(work / "kubesim", pod_ready_delay=0.0)
    try:
        setup = populate(sim, args.pods, args.namespaces)
        print(f"setup: {args.pods} pods in {args.namespaces} namespaces created in {setup:.1f}s (kubesim pid {sim.pid})")
        if args.serve:
            print(f"serving; KUBECONFIG={sim.kubeconfig}", flush=True)
            try:
                sim.proc.wait()
            except KeyboardInterrupt:
                pass
            return 0
        time.sleep(1.0)  # let the simulator's controllers settle (Deployment -> ReplicaSet -> istiod pod)
        env = sim.env()
        env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
        env["ANSIBLE_LOCAL_TEMP"] = str(work / "ansible-tmp")
        env["ANSIBLE_NOCOLOR"] = "1"
        module_cmd = [str(BIN / "ansible"), "localhost", "-c", "local", "-i", "localhost,", "-m", "okemesh.istio.injection_check",
                      "-a", f"kubeconfig={sim.kubeconfig} fail_on=never", "-e", f"ansible_python_interpreter={sys.executable}"]
        kubectl_cmd = [str(BIN / "kubectl"), "get", "pods", "-A", "-o", "json"]

        problems_cmd = module_cmd[:-3] + [module_cmd[-3] + " pod_details=problems"] + module_cmd[-2:]
        module_times, kubectl_times, problems_times = [], [], []
        summary = None
        for _round in range(args.repeat):  # interleaved, so load on the shared machine hits all alike
            t, proc = timed(kubectl_cmd, env, "kubectl")
            if proc.returncode:
                raise RuntimeError(proc.stderr)
            kubectl_times.append(t)
            count = len(json.loads(proc.stdout)["items"])
            t, proc = timed(module_cmd, env, "module")
            if proc.returncode:
                raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
            module_times.append(t)
            summary = proc.stdout
            t, proc = timed(problems_cmd, env, "problems")
            if proc.returncode:
                raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
            problems_times.append(t)
        km, mm = statistics.median(kubectl_times), statistics.median(module_times)
        print(f"kubectl get pods -A -o json: {km:.3f}s median of {args.repeat} ({count} pods) runs={[round(x, 3) for x in kubectl_times]}")
        print(f"ansible -m okemesh.istio.injection_check: {mm:.3f}s median of {args.repeat} runs={[round(x, 3) for x in module_times]}")
        print(f"module / kubectl = {mm / km:.2f}x (target < 3x); module under 3 s: {'yes' if mm < 3 else 'NO'}")
        pm = statistics.median(problems_times)
        print(f"ansible -m okemesh.istio.injection_check pod_details=problems: {pm:.3f}s median runs={[round(x, 3) for x in problems_times]}"
              f" ({pm / km:.2f}x kubectl)")
        cpu = {k: statistics.median(v) for k, v in CPU.items()}
        print(f"client CPU seconds (user+sys, median; the simulator's own CPU excluded): kubectl {cpu['kubectl']:.2f}, "
              f"module {cpu['module']:.2f}, module pod_details=problems {cpu['problems']:.2f}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        for line in (summary or "").splitlines():
            if "Status check results" in line:
                print("module said:", line.strip().strip("'-").strip())

        # in-process breakdown (no Ansible start-up)
        from ansible_collections.okemesh.istio.plugins.module_utils import _injection, _k8s

        kube = _k8s.Kube(_k8s.get_api_client({"kubeconfig": sim.kubeconfig}, environ={}))
        t0 = time.monotonic()
        items, _rv = kube.list("/api/v1/pods")
        t1 = time.monotonic()
        cache = _k8s.Cache(kube, _injection.resource_plan())
        t2 = time.monotonic()
        result = _injection.run(cache, {"fail_on": "never"}, time.time)
        t3 = time.monotonic()
        json.dumps(result)
        t4 = time.monotonic()
        print(f"in-process: raw pod LIST + json.loads {t1 - t0:.3f}s ({len(items)} pods); "
              f"service (7 LISTs + classify + report) {t3 - t2:.3f}s; result json.dumps {t4 - t3:.3f}s; "
              f"findings={len(result['findings'])} pods={result['summary']['pods']}")
        from kubernetes import client

        api = client.CoreV1Api(kube.api_client)
        # kubernetes 36.0.0 reads the token under 'BearerToken' only (see _k8s.Kube.auth_headers)
        kube.api_client.configuration.api_key["BearerToken"] = kube.auth_headers()["Authorization"]
        t0 = time.monotonic()
        typed = api.list_pod_for_all_namespaces()
        t1 = time.monotonic()
        print(f"in-process: typed CoreV1Api.list_pod_for_all_namespaces (model deserialisation) {t1 - t0:.3f}s ({len(typed.items)} pods)")
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
