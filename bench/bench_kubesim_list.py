"""Benchmark kubesim (the Kubernetes API simulator): LIST of many pods.

Starts a simulator (API only, no cluster behaviour), creates N pods across M namespaces through
the normal API (concurrent HTTPS POSTs), then times:
  * a raw ``GET /api/v1/pods`` (one request, what the server itself takes),
  * ``kubectl get pods -A -o json`` (real kubectl, which pages with limit=500),
  * the kubernetes Python client's ``list_pod_for_all_namespaces``,
and prints the simulator's memory (VmRSS / VmHWM from /proc).

    .venv/bin/python bench/bench_kubesim_list.py [--pods 5000] [--namespaces 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from kubernetes import client, config
from kubesim.launcher import start as start_kubesim

REPO = Path(__file__).resolve().parents[1]


def pod(ns: str, i: int) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"web-{i:05d}", "namespace": ns, "labels": {"app": "web", "version": "v1", "idx": str(i)},
                     "annotations": {"sidecar.istio.io/status": '{"containers":["istio-proxy"]}'}},
        "spec": {"containers": [{"name": "web", "image": "registry.example/web:1.0", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                 "env": [{"name": "MODE", "value": "bench"}], "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
                 "initContainers": [{"name": "istio-proxy", "image": "proxyv2:1.28", "restartPolicy": "Always",
                                     "args": ["proxy", "sidecar"], "ports": [{"containerPort": 15090, "name": "http-envoy-prom"}]}]},
    }


async def create_all(url: str, token: str, ca: str, namespaces: int, pods: int, concurrency: int) -> None:
    ctx = ssl.create_default_context(cafile=ca)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn = aiohttp.TCPConnector(ssl=ctx, limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as session:
        async def post(path: str, body: dict) -> None:
            async with session.post(url + path, data=json.dumps(body)) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"POST {path}: {resp.status} {await resp.text()}")
                await resp.read()

        await asyncio.gather(*(post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"bench-{n:02d}"}})
                               for n in range(namespaces)))
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            ns = f"bench-{i % namespaces:02d}"
            async with sem:
                await post(f"/api/v1/namespaces/{ns}/pods", pod(ns, i))

        await asyncio.gather(*(one(i) for i in range(pods)))


def rss(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


SERVER_PID = 0
_cpu: list[tuple[float, float]] = []        # (server CPU s, child-process CPU s) per timed call


def server_cpu() -> float:
    fields = Path(f"/proc/{SERVER_PID}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, result = [], None
    _cpu.clear()
    for _run in range(repeat):
        s0, c0 = server_cpu(), children_cpu()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        _cpu.append((server_cpu() - s0, children_cpu() - c0))
    return times, result


def fmt(times: list[float]) -> str:
    srv = statistics.median(c[0] for c in _cpu)
    kid = statistics.median(c[1] for c in _cpu)
    extra = f", kubectl CPU {kid:.2f} s" if kid > 0.005 else ""
    return (f"wall median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}, n={len(times)}); "
            f"simulator CPU {srv:.2f} s{extra}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="kubesim-bench-") as tmp:
        t0 = time.perf_counter()
        ks = start_kubesim(Path(tmp) / "kubesim", behaviour=False)
        print(f"kubesim ready in {time.perf_counter() - t0:.2f} s at {ks.url} (pid {ks.pid}); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        global SERVER_PID
        SERVER_PID = ks.pid
        try:
            print(f"simulator memory at start: {rss(ks.pid)}")
            t0 = time.perf_counter()
            asyncio.run(create_all(ks.url, ks.token, ks.ca, args.namespaces, args.pods, args.concurrency))
            dt = time.perf_counter() - t0
            print(f"created {args.pods} pods in {args.namespaces} namespaces in {dt:.2f} s ({args.pods / dt:.0f} pods/s, concurrency {args.concurrency})")

            ctx = ssl.create_default_context(cafile=ks.ca)
            import urllib.request

            def raw_list() -> int:
                req = urllib.request.Request(ks.url + "/api/v1/pods", headers={"Authorization": f"Bearer {ks.token}"})  # noqa: S310
                with urllib.request.urlopen(req, context=ctx, timeout=60) as resp:  # noqa: S310 - local simulator
                    body = resp.read()
                return len(json.loads(body)["items"]), len(body)

            times, (n, size) = timed(raw_list, args.repeat)
            print(f"raw GET /api/v1/pods ({n} items, {size / 1e6:.1f} MB JSON, incl. client decode): {fmt(times)}")

            def raw_pages() -> int:
                total, cont = 0, ""
                while True:
                    q = "?limit=500" + (f"&continue={cont}" if cont else "")
                    req = urllib.request.Request(ks.url + "/api/v1/pods" + q, headers={"Authorization": f"Bearer {ks.token}"})  # noqa: S310
                    with urllib.request.urlopen(req, context=ctx, timeout=60) as resp:  # noqa: S310 - local simulator
                        page = json.loads(resp.read())
                    total += len(page["items"])
                    cont = page["metadata"].get("continue")
                    if not cont:
                        return total

            times, n = timed(raw_pages, args.repeat)
            print(f"raw GET /api/v1/pods in pages of 500 like kubectl ({n} items, {n // 500} requests): {fmt(times)}")

            kubectl = str(Path(sys.executable).parent / "kubectl")

            def kubectl_list() -> int:
                proc = subprocess.run([kubectl, "get", "pods", "-A", "-o", "json"], capture_output=True, env=ks.env(), check=True, timeout=120)
                return len(json.loads(proc.stdout)["items"])

            times, n = timed(kubectl_list, args.repeat)
            print(f"kubectl get pods -A -o json ({n} items; mostly kubectl's own decoding/printing): {fmt(times)}")

            def kubectl_table() -> int:
                proc = subprocess.run([kubectl, "get", "pods", "-A", "--no-headers"], capture_output=True, env=ks.env(), check=True, timeout=120)
                return len(proc.stdout.splitlines())

            times, n = timed(kubectl_table, args.repeat)
            print(f"kubectl get pods -A (server-side Table, {n} rows): {fmt(times)}")

            api = config.new_client_from_config(config_file=ks.kubeconfig)
            core = client.CoreV1Api(api)

            def py_list() -> int:
                return len(core.list_pod_for_all_namespaces().items)

            def py_list_raw() -> int:
                resp = core.list_pod_for_all_namespaces(_preload_content=False)
                return len(json.loads(resp.data)["items"])

            times, n = timed(py_list, args.repeat)
            print(f"python client list_pod_for_all_namespaces ({n} items, typed models): {fmt(times)}")
            times, n = timed(py_list_raw, args.repeat)
            print(f"python client list_pod_for_all_namespaces ({n} items, _preload_content=False + json): {fmt(times)}")
            print(f"simulator memory after: {rss(ks.pid)}; load average {os.getloadavg()[0]:.1f}")
        finally:
            ks.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
