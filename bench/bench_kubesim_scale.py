"""Benchmark: kubesim (the Kubernetes API simulator) creating and readying many pods.

Default: 50 namespaces x 1 Deployment x 100 replicas = 5,000 pods (+ one Service each, so the
endpoints controller works too).  Prints the seconds until every pod is Ready and every
Deployment reports availableReplicas, and the simulator's RSS.  No assertions: numbers only.

    .venv/bin/python bench/bench_kubesim_scale.py [--namespaces 50] [--replicas 100] [--no-services]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from kubesim.launcher import start as start_kubesim
from kubesim.testing import injector_webhook, istiod, namespace, wait_for


def rss_mib(pid: int) -> tuple[float, float]:
    cur = peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cur, peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--replicas", type=int, default=100)
    ap.add_argument("--no-services", action="store_true")
    ap.add_argument("--inject", action="store_true", help="label the namespaces istio-injection=enabled; istiod and the injector webhook first")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    total = args.namespaces * args.replicas
    with tempfile.TemporaryDirectory(prefix="kubesim-bench-") as tmp:
        ks = start_kubesim(tmp)
        try:
            base_rss = rss_mib(ks.pid)[0]
            if args.inject:
                # istiod and its injector webhook; the injector is called once istiod has patched its CA in
                code, body = ks.request("POST", "/api/v1/namespaces", namespace("istio-system"))
                assert code == 201, body
                dep, svc = istiod()
                for path, obj in (("/apis/apps/v1/namespaces/istio-system/deployments", dep), ("/api/v1/namespaces/istio-system/services", svc),
                                  ("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", injector_webhook())):
                    code, body = ks.request("POST", path, obj)
                    assert code == 201, body
                wait_for(lambda: all((h.get("clientConfig") or {}).get("caBundle") for h in ks.request(
                    "GET", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-sidecar-injector")[1]["webhooks"]),
                    timeout=60, what="the injector's caBundle")
            t0 = time.monotonic()
            for i in range(args.namespaces):
                ns = f"bench-{i:02d}"
                nsobj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                if args.inject:
                    nsobj["metadata"]["labels"] = {"istio-injection": "enabled"}
                code, body = ks.request("POST", "/api/v1/namespaces", nsobj)
                assert code == 201, body
                labels = {"app": "load"}
                dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "load", "namespace": ns},
                       "spec": {"replicas": args.replicas, "selector": {"matchLabels": labels},
                                "template": {"metadata": {"labels": labels},
                                             "spec": {"containers": [{"name": "app", "image": "docker.io/library/nginx:1.27",
                                                                      "ports": [{"containerPort": 8080, "name": "http"}]}]}}}}
                code, body = ks.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", dep)
                assert code == 201, body
                if not args.no_services:
                    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "load", "namespace": ns},
                           "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
                    code, body = ks.request("POST", f"/api/v1/namespaces/{ns}/services", svc)
                    assert code == 201, body
            t_submitted = time.monotonic() - t0
            t_created = None
            while True:
                code, deps = ks.request("GET", "/apis/apps/v1/deployments")
                items = deps["items"] if code == 200 else []
                available = sum((d.get("status") or {}).get("availableReplicas") or 0 for d in items)
                created = sum((d.get("status") or {}).get("replicas") or 0 for d in items)
                if t_created is None and created >= total:
                    t_created = time.monotonic() - t0
                if available >= total:
                    break
                if time.monotonic() - t0 > args.timeout:
                    print(f"TIMEOUT after {args.timeout}s: {available}/{total} available", flush=True)
                    return 1
                time.sleep(0.5)
            t_ready = time.monotonic() - t0
            # cross-check through the pod list (what kubectl get pods -A would show)
            code, raw = ks.request("GET", "/api/v1/pods", raw=True)
            podlist = json.loads(raw)
            ready = sum(1 for p in podlist["items"] if p["metadata"]["namespace"].startswith("bench-")
                        and any(c.get("type") == "Ready" and c.get("status") == "True"
                                for c in (p.get("status") or {}).get("conditions") or []))
            eps = 0
            if not args.no_services:
                code, epl = ks.request("GET", "/api/v1/endpoints")
                eps = sum(len(s.get("addresses") or []) for e in epl["items"] if e["metadata"]["name"] == "load" for s in e.get("subsets") or [])
            cur, peak = rss_mib(ks.pid)
            injected = sum(1 for p in podlist["items"] if "sidecar.istio.io/status" in (p["metadata"].get("annotations") or {}))
            print(f"kubesim scale: {args.namespaces} namespaces x {args.replicas} replicas = {total} pods"
                  + (f" (sidecar-injected: {injected})" if args.inject else ""))
            print(f"  requests submitted      {t_submitted:7.2f} s")
            print(f"  all pods created        {t_created:7.2f} s")
            print(f"  all pods Ready          {t_ready:7.2f} s   (pods Ready per the pod list: {ready}/{total})")
            if not args.no_services:
                print(f"  endpoint addresses      {eps}")
            print(f"  simulator RSS           {cur:7.1f} MiB now, {peak:7.1f} MiB peak (idle at start {base_rss:.1f} MiB)")
            print(f"  pod list JSON           {len(raw) / 1e6:7.1f} MB")
        finally:
            ks.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
