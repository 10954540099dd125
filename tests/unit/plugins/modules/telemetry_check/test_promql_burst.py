"""A burst of traffic shorter than a scrape interval, evaluated by a real Prometheus.

Istio creates a series on the first request a sidecar sees, so after a short load-generator run
the series' first sample already holds the whole count: Prometheus' increase() answers 0 for it,
while the modules' ``observed`` form (what a counter gained in the window, series born inside it
included) answers the count.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.okemesh.istio.plugins.module_utils import _promql
from tests.fixtures.telemetry import stubs

SERIES = ('istio_requests_total{reporter="destination",source_workload="productpage-v1",source_workload_namespace="bookinfo",'
          'destination_workload="reviews-v2",destination_workload_namespace="bookinfo",destination_service_name="reviews",'
          'response_code="200",request_protocol="http"} 40\n')


class _Burst(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        body = ("# TYPE istio_requests_total counter\n" + SERIES).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return


@pytest.fixture
def burst_prometheus(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Burst)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = ("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: burst\n"
              "    metrics_path: /stats/prometheus\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % server.server_port)
    prom = stubs.start_prometheus(tmp_path / "prom", config)
    try:
        yield prom
    finally:
        prom.stop()
        server.shutdown()


def _values(prom, query):
    return [float(r["value"][1]) for r in prom.get("/api/v1/query", query=query)["data"]["result"]]


def test_a_series_born_in_the_window_counts_its_requests(burst_prometheus):
    labels = ("destination_workload",)
    # at least three samples of the unchanged counter
    stubs.wait_for_series(burst_prometheus, "count_over_time(istio_requests_total[5m]) >= 3", 1)
    assert _values(burst_prometheus, _promql.grouped_increase(_promql.REQUESTS, labels, "5m", ["bookinfo"], function="increase")) == [0.0]
    assert _values(burst_prometheus, _promql.grouped_increase(_promql.REQUESTS, labels, "5m", ["bookinfo"])) == [40.0]
    rate = _values(burst_prometheus, _promql.grouped_increase(_promql.REQUESTS, labels, "5m", ["bookinfo"], function="observed_rate"))
    assert rate == [pytest.approx(40 / 300)]
