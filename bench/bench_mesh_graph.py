#!/usr/bin/env python
"""Benchmark of okemesh.istio.mesh_graph's pipeline for 50 namespaces x 20 workloads (1,000 workloads).

Two measurements, printed (never asserted):

1. graph stage only: the answer of the one istio_requests_total query (as [(labels, rps)]) -> build_graph ->
   render_dot -> edge_lines, then Graphviz `dot -Tsvg` on the result;
2. end to end: a REAL Prometheus (Debian package) scrapes the synthetic sidecar series from a local stub; then
   the module's path is timed - ONE query per metric (istio_requests_total, istio_tcp_connections_opened_total)
   sent to Prometheus, graph, DOT, SVG rendered with dot.

Goal (issue 15): a picture in under 5 s for 1,000 workloads, with one query per metric.

    .venv/bin/python bench/bench_mesh_graph.py [--namespaces 50] [--workloads 20] [--skip-prometheus]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".collections"))
sys.path.insert(0, str(ROOT))

from ansible_collections.okemesh.istio.plugins.module_utils import _addons, _graph, _promql  # noqa: E402
from tests.fixtures.telemetry import stubs, traffic  # noqa: E402

APPS = ("front", "cart", "catalog", "pricing", "stock")  # a chain: front -> cart -> catalog -> pricing -> stock
VERSIONS = ("v1", "v2", "v3", "v4")
WEIGHTS = (40, 30, 20, 10)


def synthetic(namespaces: int, per_namespace: int):
    """A pattern of namespaces x per_namespace workloads (apps x versions), the VirtualServices and DestinationRules."""
    versions = VERSIONS[: max(1, per_namespace // len(APPS))]
    apps = APPS[: max(1, per_namespace // len(versions))]
    pattern, vss, drs = [], [], []
    for n in range(namespaces):
        ns = "team-%02d" % n
        for v, weight in zip(versions, WEIGHTS):
            pattern.append(traffic.call("istio-system", "istio-ingressgateway", ns, apps[0], "%s-%s" % (apps[0], v), weight / 10.0))
        for src_app, dst_app in zip(apps, apps[1:]):
            for sv in versions:
                for dv, weight in zip(versions, WEIGHTS):
                    rps = weight / 40.0
                    pattern.append(traffic.call(ns, "%s-%s" % (src_app, sv), ns, dst_app, "%s-%s" % (dst_app, dv), rps * 0.98))
                    pattern.append(traffic.call(ns, "%s-%s" % (src_app, sv), ns, dst_app, "%s-%s" % (dst_app, dv), rps * 0.02, code="503"))
        for app in apps[1:]:
            vss.append({"metadata": {"name": app, "namespace": ns}, "spec": {"hosts": [app], "http": [{"route": [
                {"destination": {"host": app, "subset": v}, "weight": w} for v, w in zip(versions, WEIGHTS)]}]}})
            drs.append({"metadata": {"name": app, "namespace": ns}, "spec": {"host": app, "subsets": [
                {"name": v, "labels": {"version": v}} for v in versions]}})
    workloads = namespaces * len(apps) * len(versions)
    return pattern, vss, drs, workloads


def timed(label, fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    took = time.perf_counter() - start
    print("  %-52s %8.3f s" % (label, took))
    return value, took


def render_svg(dot_text: str, workdir: str) -> int:
    src = os.path.join(workdir, "mesh.dot")
    out = os.path.join(workdir, "mesh.svg")
    with open(src, "w") as handle:
        handle.write(dot_text)
    subprocess.run(["dot", "-Tsvg", "-o", out, src], check=True)  # noqa: S603, S607 - fixed argv
    return os.path.getsize(out)


def graph_stage(samples, tcp, routing, workdir):
    graph, t_build = timed("build_graph", _graph.build_graph, samples, tcp, routing)
    dot_text, t_dot = timed("render_dot", _graph.render_dot, graph, "bench")
    lines, t_lines = timed("edge_lines", _graph.edge_lines, graph)
    size, t_svg = timed("dot -Tsvg (Graphviz layout + SVG)", render_svg, dot_text, workdir)
    print("  -> %d nodes, %d edges, %d edge lines, DOT %d bytes, SVG %d bytes" % (
        len(graph["nodes"]), len(graph["edges"]), len(lines), len(dot_text), size))
    return t_build + t_dot + t_lines, t_svg


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--workloads", type=int, default=20, help="workloads per namespace")
    parser.add_argument("--skip-prometheus", action="store_true", help="only the graph stage")
    args = parser.parse_args()
    if not shutil.which("dot"):
        sys.exit("Graphviz dot is missing: bash scripts/install_system_packages.sh")
    pattern, vss, drs, workloads = synthetic(args.namespaces, args.workloads)
    routing = _graph.declared_routing(vss, drs)
    samples = traffic.samples(pattern)
    print("mesh_graph benchmark: %d namespaces x %d workloads = %d workloads, %d call patterns, %d series in the query answer"
          % (args.namespaces, args.workloads, workloads, len(pattern), len(samples)))
    work = tempfile.mkdtemp(prefix="bench-mesh-graph-")
    try:
        print("1. graph stage on a query answer of that size")
        t_graph, t_svg = graph_stage(samples, [], routing, work)
        print("  total: %.3f s (graph + DOT %.3f s, dot render %.3f s)" % (t_graph + t_svg, t_graph, t_svg))
        if args.skip_prometheus:
            return
        print("2. end to end: a real Prometheus scraping %d sidecars' series (one federated target)" % workloads)
        metrics = stubs.MetricsStub(pattern)
        config = stubs.prometheus_config(metrics.port, [], istiod=False, interval="2s").replace(
            "    static_configs:\n", "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % metrics.port, 1)
        prom = stubs.start_prometheus(Path(work) / "prometheus", config)
        try:
            expected = len(traffic.samples(pattern, reporter="source")) + len(samples)
            timed("first scrape of %d series + 25 s of samples" % expected, _wait, prom, expected)
            client = _addons.Prometheus(_addons.Prefixed(_addons.DirectURL("prometheus", prom.url), ""))
            start = time.perf_counter()
            q_requests = _promql.grouped_increase(_promql.REQUESTS, _promql.REQUEST_LABELS, "20s", None, "destination", "rate")
            q_tcp = _promql.grouped_increase(_promql.TCP_OPENED, _promql.TCP_LABELS, "20s", None, "destination", "rate")
            answer, t_q1 = timed("query istio_requests_total (sum by Istio labels)", client.query, q_requests)
            tcp, t_q2 = timed("query istio_tcp_connections_opened_total", client.query, q_tcp)
            t_graph, t_svg = graph_stage(answer, tcp, routing, work)
            total = time.perf_counter() - start
            print("  queries sent: %d (one per metric); series answered: %d" % (len(client.queries), len(answer)))
            print("  total end to end: %.3f s (queries %.3f s, graph + DOT %.3f s, dot render %.3f s) - goal < 5 s for 1,000 workloads"
                  % (total, t_q1 + t_q2, t_graph, t_svg))
        finally:
            prom.stop()
            metrics.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _wait(prom, expected):
    stubs.wait_for_series(prom, "istio_requests_total", expected, timeout=120)
    stubs.wait_for_series(prom, "min(count_over_time(istio_requests_total[25s])) >= 12", 1, timeout=120)


if __name__ == "__main__":
    main()
