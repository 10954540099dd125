"""okemesh.istio.mesh_graph end to end: main() against the API server stub (VirtualServices, DestinationRules,
Services, pods, the service proxy) and a REAL Prometheus scraping the bookinfo pattern; Graphviz dot renders.

prometheus and dot are required (Debian packages prometheus and graphviz; scripts/install_system_packages.sh):
without them these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.okemesh.istio.plugins.doc_fragments.k8s_auth import ModuleDocFragment
from ansible_collections.okemesh.istio.plugins.modules import mesh_graph
from tests.fixtures.telemetry import stubs
from tests.support.modules import run_module

# one worker starts the shared Prometheus environment (tests/unit/plugins/modules/conftest.py)
pytestmark = pytest.mark.xdist_group("telemetry")

WINDOW = "10s"


def run_main(capsys, args: dict) -> dict:
    return run_module(mesh_graph, capsys, args)


def test_documented_options_match_the_argument_spec():
    doc = yaml.safe_load(mesh_graph.DOCUMENTATION)
    options = dict(doc["options"])
    options.update(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"])
    spec = mesh_graph.argument_spec()
    assert sorted(options) == sorted(spec)
    for name, s in spec.items():
        for key, default in (("type", "str"), ("default", None), ("choices", None), ("elements", None), ("required", False)):
            assert options[name].get(key, default) == s.get(key, default), (name, key)
        if s.get("options"):
            assert sorted(options[name]["suboptions"]) == sorted(s["options"])
    assert {k: v["support"] for k, v in doc["attributes"].items()} == {"check_mode": "full", "diff_mode": "full", "idempotent": "full"}
    yaml.safe_load(mesh_graph.EXAMPLES)
    yaml.safe_load(mesh_graph.RETURN)


def test_graphviz_dot_is_installed():
    """CI installs graphviz; a missing dot is a failure, not a skip."""
    assert shutil.which("dot"), "Graphviz dot is missing: run `bash scripts/install_system_packages.sh` (apt-get install graphviz)"


def test_bookinfo_graph_svg_png_and_a_rerun_without_change(telemetry_env, api, capsys, tmp_path):
    path = str(tmp_path / "mesh.dot")
    # a fixed evaluation time inside the scraped data (the same traffic, byte for byte), where no target's
    # newest scrape is stale (a stale one makes Prometheus extrapolate its rate short: 9.9 rps for 10)
    at = stubs.settled_time(telemetry_env.prometheus)
    args = {"kubeconfig": api.kubeconfig, "namespaces": ["bookinfo"], "window": WINDOW, "path": path, "formats": ["svg", "png"],
            "time": at}
    out = run_main(capsys, args)
    assert out["changed"] is True and out["rendered"] is True
    assert out["pictures"] == {"svg": str(tmp_path / "mesh.svg"), "png": str(tmp_path / "mesh.png")}
    assert out["files"] == {path: True, str(tmp_path / "mesh.svg"): True, str(tmp_path / "mesh.png"): True}
    svg = (tmp_path / "mesh.svg").read_text()
    assert svg.startswith("<?xml") and "reviews&#45;v2" in svg and "observed 48/0/52" in svg
    assert (tmp_path / "mesh.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reviews = [n for n in out["nodes"] if n["id"] == "service:bookinfo/reviews"][0]
    assert reviews["split"] == {"versions": ["v1", "v2", "v3"], "declared": [50, 0, 50], "observed": [48, 0, 52],
                                "virtual_service": "bookinfo/reviews", "conditional_routes": 0}
    workloads = sorted(n["name"] for n in out["nodes"] if n["kind"] == "workload")
    assert workloads == ["details-v1", "istio-ingressgateway", "productpage-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3"]
    gateway = [e for e in out["edges"] if e["source"] == "workload:istio-system/istio-ingressgateway"][0]
    assert gateway["rps"] == 10.0 and gateway["mtls"] == "mTLS" and gateway["protocol"] == "http"
    assert "split bookinfo/reviews: v1/v2/v3 declared 50/0/50, observed 48/0/52 (VirtualService bookinfo/reviews)" in out["edge_lines"]
    # ONE query per metric, through the service proxy; the DOT equals the golden rendering of the same pattern
    assert len(out["queries"]) == 2 and len(api.proxied("/services/prometheus:9090/proxy/api/v1/query?")) == 2
    golden = (os.path.dirname(__file__) + "/../../../../fixtures/telemetry/bookinfo-mesh.dot")
    expected = open(golden).read().replace("rates over 5m", "rates over 10s")
    assert open(path).read() == expected
    mtimes = dict((p, os.stat(p).st_mtime_ns) for p in out["files"])
    again = run_main(capsys, args)
    assert again["changed"] is False and set(again["files"].values()) == {False}
    assert dict((p, os.stat(p).st_mtime_ns) for p in out["files"]) == mtimes


def test_check_mode_and_diff_mode(telemetry_env, api, capsys, tmp_path):
    path = tmp_path / "mesh.dot"
    path.write_text("digraph mesh {}\n")
    args = {"kubeconfig": api.kubeconfig, "namespaces": ["bookinfo"], "window": WINDOW, "path": str(path),
            "_ansible_check_mode": True, "_ansible_diff": True}
    out = run_main(capsys, args)
    assert out["changed"] is True and out["files"][str(path)] is True
    assert path.read_text() == "digraph mesh {}\n" and not (tmp_path / "mesh.svg").exists()
    assert out["diff"]["before"] == "digraph mesh {}\n" and "declared 50/0/50" in out["diff"]["after"]
    assert sorted(os.listdir(tmp_path)) == ["mesh.dot"]


def test_without_dot_the_dot_file_is_written_and_the_result_says_how_to_render(telemetry_env, api, capsys, tmp_path, monkeypatch):
    real = AnsibleModule.get_bin_path

    def no_dot(self, arg, *args, **kwargs):  # as on a controller without graphviz
        return None if arg == "dot" else real(self, arg, *args, **kwargs)

    monkeypatch.setattr(AnsibleModule, "get_bin_path", no_dot)
    path = str(tmp_path / "mesh.dot")
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "namespaces": ["bookinfo"], "window": WINDOW, "path": path})
    assert out["changed"] is True and out["rendered"] is False and out["pictures"] == {}
    assert os.path.exists(path) and not os.path.exists(str(tmp_path / "mesh.svg"))
    assert out["render_hint"].endswith("dot -Tsvg -o %s %s" % (tmp_path / "mesh.svg", path))
    assert "apt-get install graphviz" in out["render_hint"] and out["warnings"]


def test_virtual_service_shift_is_read_from_the_cluster(telemetry_env, api, capsys, tmp_path):
    shifted = dict(api.objects)
    vs = json.loads(json.dumps(shifted["/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices"]))
    vs[0]["spec"]["http"][0]["route"] = [{"destination": {"host": "reviews", "subset": "v3"}}]
    saved = api.objects
    api.objects = dict(shifted, **{"/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices": vs})
    try:
        out = run_main(capsys, {"kubeconfig": api.kubeconfig, "namespaces": ["bookinfo"], "window": WINDOW,
                                "path": str(tmp_path / "mesh.dot"), "formats": [],
                                "time": stubs.settled_time(telemetry_env.prometheus)})
    finally:
        api.objects = saved
    reviews = [n for n in out["nodes"] if n["id"] == "service:bookinfo/reviews"][0]
    assert reviews["split"]["declared"] == [0, 0, 100] and reviews["split"]["observed"] == [48, 0, 52]


def test_explicit_url_without_routing_needs_no_cluster(telemetry_env, capsys, tmp_path):
    out = run_main(capsys, {"path": str(tmp_path / "mesh.dot"), "formats": [], "window": WINDOW, "namespaces": ["broken"],
                            "time": stubs.settled_time(telemetry_env.prometheus), "routing": False, "idle_workloads": False,
                            "prometheus": {"url": telemetry_env.prometheus.url},
                            "kubeconfig": str(tmp_path / "no-such-kubeconfig")})
    tcp = [e for e in out["edges"] if e["kind"] == "call" and e["protocol"] == "tcp"]
    assert [(e["source"], e["target"]) for e in tcp] == [("workload:broken/productpage-v1", "service:broken/details")]
    assert tcp[0]["connections_per_second"] == 2.0
    ratings = [e for e in out["edges"] if e["kind"] == "call" and e["target"] == "service:broken/ratings"][0]
    assert ratings["error_percent"] == 40.0


def test_errors_name_what_to_fix(telemetry_env, api, capsys, tmp_path):
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "path": str(tmp_path), "window": WINDOW})
    assert out["failed"] is True and out["msg"] == "path %s is a directory: give the DOT file's path, for example %s/mesh.dot" % (
        tmp_path, tmp_path)
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "path": str(tmp_path / "no" / "mesh.dot"), "window": WINDOW})
    assert out["failed"] is True and "does not exist: create" in out["msg"]
    api.services[("istio-system", "prometheus")] = "no-endpoints"
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "path": str(tmp_path / "mesh.dot"), "window": WINDOW})
    assert out["failed"] is True and out["kind"] == "unavailable" and out["status"] == 503
    assert "no endpoints available" in out["msg"] and not (tmp_path / "mesh.dot").exists()
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "path": str(tmp_path / "mesh.dot"), "window": "ten"})
    assert out["msg"].startswith("window must be a Prometheus duration")


def test_a_prometheus_error_is_reported_with_its_text(telemetry_env, api, capsys, tmp_path):
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "path": str(tmp_path / "mesh.dot"), "window": WINDOW, "time": "yesterday"})
    assert out["failed"] is True and out["kind"] == "query_error" and out["status"] == 400
    assert "bad_data" in out["msg"] and "yesterday" in out["msg"] and "istio_requests_total" in out["query"]
    assert not (tmp_path / "mesh.dot").exists()


def test_a_namespace_without_traffic_warns(telemetry_env, api, capsys, tmp_path):
    out = run_main(capsys, {"kubeconfig": api.kubeconfig, "namespaces": ["quiet"], "window": WINDOW, "path": str(tmp_path / "mesh.dot"),
                            "routing": False, "idle_workloads": False})
    assert out["edges"] == [] and out["nodes"] == [] and out["rendered"] is True
    assert "the graph is empty" in json.dumps(out["warnings"])  # ansible-core 2.19 returns warnings as summaries
    assert "no request recorded in the window" in (tmp_path / "mesh.svg").read_text()
