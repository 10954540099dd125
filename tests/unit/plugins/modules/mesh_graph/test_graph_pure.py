"""The pure parts of mesh_graph: declared routing, graph building, DOT (golden file), text edges, atomic writes.

Regenerate the golden file after an intended change of the rendering:
    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/plugins/modules/mesh_graph/test_graph_pure.py -k golden
and review the diff.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from ansible_collections.okemesh.istio.plugins.module_utils import _graph
from ansible_collections.okemesh.istio.plugins.module_utils._errors import GraphError
from tests.fixtures.telemetry import traffic

GOLDEN = Path(__file__).resolve().parents[5] / "tests" / "fixtures" / "telemetry" / "bookinfo-mesh.dot"
TITLE = "Istio mesh - bookinfo: rates over 5m (reporter=destination)"


def bookinfo_graph(samples=None, idle=True):
    routing = _graph.declared_routing([traffic.bookinfo_virtual_service(), traffic.gateway_virtual_service()],
                                      [traffic.bookinfo_destination_rule()])
    objects = traffic.bookinfo_objects()
    members = _graph.service_members(objects["/api/v1/namespaces/bookinfo/services"], objects["/api/v1/namespaces/bookinfo/pods"])
    return _graph.build_graph(samples if samples is not None else traffic.samples(traffic.BOOKINFO), [], routing,
                              members=members if idle else None)


def test_service_of_host():
    assert _graph.service_of_host("reviews", "bookinfo") == ("bookinfo", "reviews")
    assert _graph.service_of_host("reviews.shop", "bookinfo") == ("shop", "reviews")
    assert _graph.service_of_host("reviews.shop.svc.cluster.local", "bookinfo") == ("shop", "reviews")
    assert _graph.service_of_host("api.example.com", "bookinfo") is None
    assert _graph.service_of_host("*.example.com", "bookinfo") is None


def test_declared_routing_from_virtual_service_and_subsets():
    routing = _graph.declared_routing([traffic.bookinfo_virtual_service(), traffic.gateway_virtual_service()],
                                      [traffic.bookinfo_destination_rule()])
    assert routing == {("bookinfo", "reviews"): dict(virtual_service="bookinfo/reviews", subsets={"v1": 50, "v3": 50},
                                                     versions={"v1": 50, "v2": 0, "v3": 50}, conditional=0)}


def test_declared_routing_default_route_subset_labels_and_single_destination():
    vs = {"metadata": {"name": "r", "namespace": "shop"}, "spec": {"hosts": ["reviews"], "http": [
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [{"destination": {"host": "reviews", "subset": "blue"}}]},
        {"route": [{"destination": {"host": "reviews.shop.svc.cluster.local", "subset": "green"}}]},
    ]}}
    dr = {"metadata": {"name": "r", "namespace": "shop"}, "spec": {"host": "reviews", "subsets": [
        {"name": "blue", "labels": {"version": "v2"}}, {"name": "green", "labels": {"version": "v3"}}]}}
    routing = _graph.declared_routing([vs], [dr])
    assert routing[("shop", "reviews")]["versions"] == {"v2": 0, "v3": 100}
    assert routing[("shop", "reviews")]["conditional"] == 1


@pytest.mark.parametrize("values,expected", [
    ([4.8, 0, 5.2], [48, 0, 52]), ([1, 1, 1], [34, 33, 33]), ([0, 0], [0, 0]), ([2.0], [100]), ([1, 2], [33, 67]),
])
def test_split_percent_adds_up_to_100(values, expected):
    assert _graph.split_percent(values) == expected


def test_round_rate():
    assert _graph.round_rate(4.7999) == 4.8 and _graph.round_rate(0.012345) == 0.012 and _graph.round_rate(123.4) == 120.0
    assert _graph.round_rate(123.4, 4) == 123.4 and _graph.round_rate(0) == 0.0
    assert _graph.format_rate(120.0) == "120" and _graph.format_rate(0.012) == "0.012"


def test_bookinfo_graph_nodes_edges_and_split():
    graph = bookinfo_graph()
    ids = [n["id"] for n in graph["nodes"]]
    assert ids == ["service:bookinfo/details", "service:bookinfo/productpage", "service:bookinfo/ratings", "service:bookinfo/reviews",
                   "workload:bookinfo/details-v1", "workload:bookinfo/productpage-v1", "workload:bookinfo/ratings-v1",
                   "workload:bookinfo/reviews-v1", "workload:bookinfo/reviews-v2", "workload:bookinfo/reviews-v3",
                   "workload:istio-system/istio-ingressgateway"]  # bookinfo's six workloads and the gateway
    reviews = [n for n in graph["nodes"] if n["id"] == "service:bookinfo/reviews"][0]
    assert reviews["split"] == dict(versions=["v1", "v2", "v3"], declared=[50, 0, 50], observed=[48, 0, 52],
                                    virtual_service="bookinfo/reviews", conditional_routes=0)
    calls = [e for e in graph["edges"] if e["kind"] == "call"]
    details = [e for e in calls if e["target"] == "service:bookinfo/details"][0]
    assert details == dict(kind="call", source="workload:bookinfo/productpage-v1", target="service:bookinfo/details",
                           protocol="http", rps=10.0, connections_per_second=None, error_percent=1.0, mtls="mTLS")
    routes = dict((e["target"], e) for e in graph["edges"] if e["kind"] == "route")
    assert routes["workload:bookinfo/reviews-v3"]["observed_percent"] == 52
    assert routes["workload:bookinfo/reviews-v3"]["declared_percent"] == 50
    assert routes["workload:bookinfo/details-v1"]["declared_percent"] is None
    assert routes["workload:bookinfo/reviews-v2"] == dict(kind="route", source="service:bookinfo/reviews",
                                                          target="workload:bookinfo/reviews-v2", rps=0.0, error_percent=0.0,
                                                          observed_percent=0, declared_percent=0)


def test_without_idle_workloads_the_split_still_lists_declared_versions():
    graph = bookinfo_graph(idle=False)
    assert "workload:bookinfo/reviews-v2" not in [n["id"] for n in graph["nodes"]]
    reviews = [n for n in graph["nodes"] if n["id"] == "service:bookinfo/reviews"][0]
    assert reviews["split"]["observed"] == [48, 0, 52] and reviews["split"]["declared"] == [50, 0, 50]


def test_service_members():
    objects = traffic.bookinfo_objects()
    members = _graph.service_members(objects["/api/v1/services"], objects["/api/v1/pods"])
    assert members[("bookinfo", "reviews")] == [("reviews-v1", "reviews", "v1"), ("reviews-v2", "reviews", "v2"),
                                                ("reviews-v3", "reviews", "v3")]
    assert ("broken", "idle") not in members  # no Service selects idle-v1


def test_golden_dot_for_the_bookinfo_pattern():
    dot = _graph.render_dot(bookinfo_graph(), TITLE)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(dot)
    assert dot == GOLDEN.read_text()


def test_same_traffic_same_bytes_whatever_the_answer_order():
    samples = traffic.samples(traffic.BOOKINFO)
    expected = _graph.render_dot(bookinfo_graph(samples), TITLE)
    rng = random.Random(7)
    for _round in range(5):
        shuffled = list(samples)
        rng.shuffle(shuffled)
        jittered = [(labels, value * (1 + rng.uniform(-0.001, 0.001))) for labels, value in shuffled]  # scrape-timing noise
        assert _graph.render_dot(bookinfo_graph(jittered), TITLE) == expected


def test_edge_lines():
    lines = _graph.edge_lines(bookinfo_graph())
    assert "istio-system/istio-ingressgateway -> bookinfo/productpage (service): 10 rps, 0% errors, http, mTLS" in lines
    assert "bookinfo/productpage-v1 -> bookinfo/details (service): 10 rps, 1% errors, http, mTLS" in lines
    assert "  service bookinfo/reviews -> reviews-v3 (v3): observed 52%, declared 50%, 5.2 rps" in lines
    assert lines[-1] == "split bookinfo/reviews: v1/v2/v3 declared 50/0/50, observed 48/0/52 (VirtualService bookinfo/reviews)"


def test_tcp_plaintext_and_external_sources():
    pattern = [traffic.call("shop", "api-v1", "shop", "db", "db-v1", 0.5, protocol="tcp", mtls="none"),
               traffic.call("unknown", "unknown", "shop", "api", "api-v1", 3.0, mtls="none")]
    graph = _graph.build_graph(traffic.samples(pattern), traffic.samples(pattern, protocol="tcp"), {})
    calls = dict((e["source"], e) for e in graph["edges"] if e["kind"] == "call")
    assert calls["workload:shop/api-v1"]["protocol"] == "tcp" and calls["workload:shop/api-v1"]["connections_per_second"] == 0.5
    assert calls["workload:shop/api-v1"]["mtls"] == "plaintext"
    assert calls["external:unknown"]["rps"] == 3.0
    dot = _graph.render_dot(graph)
    assert '"external:unknown" [shape=doubleoctagon' in dot and 'label="0.5 conn/s\\ntcp plaintext"' in dot
    assert "style=dashed" in dot  # plaintext calls are dashed


def test_write_outputs_atomic_and_only_when_different(tmp_path):
    path = str(tmp_path / "mesh.dot")
    first = _graph.write_outputs("digraph a {}\n", path, [], render=None)
    assert first["changed"] is True and first["before"] is None and (tmp_path / "mesh.dot").read_text() == "digraph a {}\n"
    os.chmod(path, 0o640)
    mtime = os.stat(path).st_mtime_ns
    again = _graph.write_outputs("digraph a {}\n", path, [], render=None)
    assert again["changed"] is False and os.stat(path).st_mtime_ns == mtime
    check = _graph.write_outputs("digraph b {}\n", path, [], render=None, check_mode=True)
    assert check["changed"] is True and (tmp_path / "mesh.dot").read_text() == "digraph a {}\n"
    _graph.write_outputs("digraph b {}\n", path, [], render=None)
    assert (tmp_path / "mesh.dot").read_text() == "digraph b {}\n" and os.stat(path).st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["mesh.dot"]  # no temporary left behind
    with pytest.raises(GraphError, match="does not exist"):
        _graph.write_outputs("x", str(tmp_path / "missing" / "mesh.dot"), [], render=None)


def test_output_paths():
    assert _graph.output_paths("/w/mesh.dot", ["svg", "png"]) == {"svg": "/w/mesh.svg", "png": "/w/mesh.png"}
    assert _graph.output_paths("/w/graph", ["svg"]) == {"svg": "/w/graph.svg"}


def test_no_traffic_gives_a_note_not_an_empty_picture():
    graph = _graph.build_graph([], [], {})
    assert graph == {"nodes": [], "edges": []}
    assert '"note:empty" [shape=note' in _graph.render_dot(graph) and _graph.edge_lines(graph) == []
