# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Istio service graph: workloads and services from istio_requests_total, routing declared by
VirtualServices and DestinationRules, rendered as Graphviz DOT (the successor of Servicegraph).

``build_graph``, ``declared_routing``, ``render_dot`` and ``edge_lines`` are pure: the same
samples give the same bytes (sorted everywhere, rates rounded to a few significant digits, no
timestamps).  ``write_outputs`` writes the DOT file and the rendered pictures atomically, only
when their content differs.

This is a private module_utils file: it may change at any time.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import os
import tempfile

from ansible_collections.okemesh.istio.plugins.module_utils._errors import GraphError
from ansible_collections.okemesh.istio.plugins.module_utils._telemetry import workload_name

EXTERNAL = "unknown"  # Istio's value for a source outside the mesh


def round_rate(value: float, digits: int = 2) -> float:
    """``value`` rounded to ``digits`` significant digits (0.01234 -> 0.012, 48.7 -> 49.0)."""
    if value <= 0:
        return 0.0
    return float("%.*g" % (max(1, digits), value))


def format_rate(value: float) -> str:
    text = ("%.6f" % value).rstrip("0").rstrip(".")
    return text or "0"


def split_percent(values) -> list:
    """Integer percentages of ``values`` that add up to 100 (largest remainder; ties by position)."""
    total = float(sum(values))
    if total <= 0:
        return [0 for _v in values]
    raw = [v * 100.0 / total for v in values]
    floors = [int(r) for r in raw]
    short = 100 - sum(floors)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - floors[i]), i))
    for i in order[:short]:
        floors[i] += 1
    return floors


# --------------------------------------------------------------------------------------
# declared routing: VirtualService weights, DestinationRule subsets -> version labels
# --------------------------------------------------------------------------------------
def service_of_host(host: str, namespace: str, domain: str = "cluster.local"):
    """(namespace, service) a VirtualService/DestinationRule host means, or None for an external host."""
    if not host or "*" in host:
        return None
    parts = host.split(".")
    if len(parts) == 1:
        return (namespace, parts[0])
    if len(parts) == 2:
        return (parts[1], parts[0])
    suffix = "svc." + domain
    if host.endswith("." + suffix) and len(parts) == 3 + len(domain.split(".")):
        return (parts[1], parts[0])
    return None


def _meta(obj):
    return obj.get("metadata") or {}


def subset_versions(destination_rules, domain: str = "cluster.local") -> dict:
    """{(namespace, service): {subset: version label (or the subset name when the subset has no version label)}}."""
    out = {}
    for dr in sorted(destination_rules or [], key=lambda o: (_meta(o).get("namespace") or "", _meta(o).get("name") or "")):
        spec = dr.get("spec") or {}
        key = service_of_host(spec.get("host") or "", _meta(dr).get("namespace") or "default", domain)
        if key is None or key in out:
            continue
        out[key] = dict((s.get("name"), (s.get("labels") or {}).get("version") or s.get("name"))
                        for s in spec.get("subsets") or [] if s.get("name"))
    return out


def declared_routing(virtual_services, destination_rules, domain: str = "cluster.local") -> dict:
    """{(namespace, service): dict(virtual_service, versions {version: weight}, subsets {subset: weight}, conditional)}.

    The declared split is the one of the VirtualService's default HTTP route (the last route
    without ``match``, or the only route); routes with a ``match`` are counted in ``conditional``.
    A destination without a subset routes to the whole service and declares no version split.
    """
    subsets = subset_versions(destination_rules, domain)
    out = {}
    for vs in sorted(virtual_services or [], key=lambda o: (_meta(o).get("namespace") or "", _meta(o).get("name") or "")):
        namespace = _meta(vs).get("namespace") or "default"
        routes = (vs.get("spec") or {}).get("http") or []
        if not routes:
            continue
        default = [r for r in routes if not r.get("match")]
        chosen = default[-1] if default else (routes[0] if len(routes) == 1 else None)
        if chosen is None:
            continue
        conditional = len([r for r in routes if r.get("match")])
        dests = chosen.get("route") or []
        per_service = {}
        for dest in dests:
            d = dest.get("destination") or {}
            key = service_of_host(d.get("host") or "", namespace, domain)
            if key is None:
                continue
            weight = dest.get("weight")
            weight = int(weight) if weight is not None else (100 if len(dests) == 1 else 0)
            entry = per_service.setdefault(key, dict(subsets={}, whole=0))
            if d.get("subset"):
                entry["subsets"][d["subset"]] = entry["subsets"].get(d["subset"], 0) + weight
            else:
                entry["whole"] += weight
        for key, entry in sorted(per_service.items()):
            if key in out or not entry["subsets"]:
                continue
            names = subsets.get(key, {})
            versions = dict((version, 0) for version in names.values())  # subsets the route leaves out: declared 0
            for subset, weight in entry["subsets"].items():
                version = names.get(subset, subset)
                versions[version] = versions.get(version, 0) + weight
            out[key] = dict(virtual_service="%s/%s" % (namespace, _meta(vs).get("name")), subsets=dict(entry["subsets"]),
                            versions=versions, conditional=conditional)
    return out


def service_members(services, pods) -> dict:
    """{(namespace, service): [(workload, app, version)]}: the workloads whose running pods a Service selects.

    Lets the graph show the workloads that received no traffic in the window (reviews-v2 under a
    50/0/50 split) next to those that did.
    """
    by_ns = {}
    for pod in pods or []:
        if (pod.get("status") or {}).get("phase") not in (None, "Running", "Pending"):
            continue
        by_ns.setdefault(_meta(pod).get("namespace"), []).append(pod)
    out = {}
    for svc in services or []:
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not selector:
            continue
        namespace = _meta(svc).get("namespace")
        found = {}
        for pod in by_ns.get(namespace, []):
            labels = _meta(pod).get("labels") or {}
            if all(labels.get(k) == v for k, v in selector.items()):
                found[workload_name(pod)] = (labels.get("app"), labels.get("version"))
        if found:
            out[(namespace, _meta(svc).get("name"))] = sorted((wl, app, version) for wl, (app, version) in found.items())
    return out


# --------------------------------------------------------------------------------------
# graph
# --------------------------------------------------------------------------------------
def _workload_node(nodes, namespace, name, app, version):
    if not name or name == EXTERNAL:
        node_id = "external:unknown"
        nodes.setdefault(node_id, dict(id=node_id, kind="external", namespace=None, name="unknown (outside the mesh)",
                                       app=None, version=None))
        return node_id
    node_id = "workload:%s/%s" % (namespace or "", name)
    node = nodes.setdefault(node_id, dict(id=node_id, kind="workload", namespace=namespace or None, name=name,
                                          app=None, version=None))
    if app and app != EXTERNAL and not node["app"]:
        node["app"] = app
    if version and version != EXTERNAL and not node["version"]:
        node["version"] = version
    return node_id


def _service_node(nodes, namespace, name):
    if not name or name == EXTERNAL:
        name, namespace = "unknown", None
    node_id = "service:%s/%s" % (namespace or "", name)
    nodes.setdefault(node_id, dict(id=node_id, kind="service", namespace=namespace or None, name=name))
    return node_id


def _mtls(policies: dict) -> str:
    seen = set(p for p, v in policies.items() if v > 0)
    if seen == set(["mutual_tls"]):
        return "mTLS"
    if seen == set(["none"]):
        return "plaintext"
    if "mutual_tls" in seen:
        return "partial mTLS"
    return "unknown"


def build_graph(requests, tcp=None, routing=None, digits: int = 2, members=None) -> dict:
    """Nodes and edges from ``requests`` ([(labels, requests/s)], istio_requests_total by Istio's labels) and
    ``tcp`` ([(labels, connections/s)], istio_tcp_connections_opened_total), with ``routing`` from
    ``declared_routing``.  ``members`` (from ``service_members``) adds the idle workloads behind the
    services that received traffic, with an observed share of 0.

    Edges: ``call`` (source workload -> service: rps, error share, protocol, mTLS) and ``route``
    (service -> destination workload: rps, observed share of the service's traffic, declared weight).
    """
    routing = routing or {}
    nodes = {}
    calls, routes = {}, {}
    for labels, value in requests or []:
        if value <= 0:
            continue
        src = _workload_node(nodes, labels.get("source_workload_namespace"), labels.get("source_workload"),
                             labels.get("source_app"), labels.get("source_version"))
        svc = _service_node(nodes, labels.get("destination_service_namespace"), labels.get("destination_service_name"))
        dst = _workload_node(nodes, labels.get("destination_workload_namespace"), labels.get("destination_workload"),
                             labels.get("destination_app"), labels.get("destination_version"))
        failed = not str(labels.get("response_code") or "").startswith("2")
        call = calls.setdefault((src, svc, "http"), dict(rps=0.0, errors=0.0, protocols=set(), policies={}))
        call["rps"] += value
        call["errors"] += value if failed else 0.0
        call["protocols"].add(labels.get("request_protocol") or "http")
        policy = labels.get("connection_security_policy") or "unknown"
        call["policies"][policy] = call["policies"].get(policy, 0.0) + value
        route = routes.setdefault((svc, dst), dict(rps=0.0, errors=0.0))
        route["rps"] += value
        route["errors"] += value if failed else 0.0
    for labels, value in tcp or []:
        if value <= 0:
            continue
        src = _workload_node(nodes, labels.get("source_workload_namespace"), labels.get("source_workload"),
                             labels.get("source_app"), labels.get("source_version"))
        svc = _service_node(nodes, labels.get("destination_service_namespace"), labels.get("destination_service_name"))
        dst = _workload_node(nodes, labels.get("destination_workload_namespace"), labels.get("destination_workload"),
                             labels.get("destination_app"), labels.get("destination_version"))
        call = calls.setdefault((src, svc, "tcp"), dict(rps=0.0, errors=0.0, protocols=set(["tcp"]), policies={}))
        call["rps"] += value
        policy = labels.get("connection_security_policy") or "unknown"
        call["policies"][policy] = call["policies"].get(policy, 0.0) + value
        routes.setdefault((svc, dst), dict(rps=0.0, errors=0.0, tcp=True))
    for svc in sorted(k for k in nodes if k.startswith("service:")):
        node = nodes[svc]
        for workload, app, version in (members or {}).get((node["namespace"], node["name"]), []):
            dst = _workload_node(nodes, node["namespace"], workload, app, version)
            routes.setdefault((svc, dst), dict(rps=0.0, errors=0.0))

    edges = []
    for (src, svc, kind), agg in sorted(calls.items()):
        edges.append(dict(
            kind="call", source=src, target=svc, protocol="/".join(sorted(agg["protocols"])),
            rps=round_rate(agg["rps"], digits) if kind == "http" else None,
            connections_per_second=round_rate(agg["rps"], digits) if kind == "tcp" else None,
            error_percent=round(agg["errors"] * 100.0 / agg["rps"], 1) if kind == "http" and agg["rps"] else 0.0,
            mtls=_mtls(agg["policies"]),
        ))
    by_service = {}
    for (svc, dst), agg in routes.items():
        by_service.setdefault(svc, []).append((dst, agg))
    for svc in sorted(by_service):
        node = nodes[svc]
        members = sorted(by_service[svc], key=lambda item: (nodes[item[0]].get("version") or "", item[0]))
        shares = split_percent([agg["rps"] for _dst, agg in members])
        declared = routing.get((node["namespace"], node["name"]))
        for (dst, agg), share in zip(members, shares):
            version = nodes[dst].get("version")
            edges.append(dict(
                kind="route", source=svc, target=dst, rps=round_rate(agg["rps"], digits),
                error_percent=round(agg["errors"] * 100.0 / agg["rps"], 1) if agg["rps"] else 0.0,
                observed_percent=share,
                declared_percent=(declared["versions"].get(version, 0) if declared else None),
            ))
        if declared or len(members) > 1:
            observed = dict((nodes[dst].get("version") or nodes[dst]["name"], share) for (dst, _agg), share in zip(members, shares))
            versions = sorted(set(observed) | set(declared["versions"] if declared else []))
            node["split"] = dict(
                versions=versions,
                observed=[observed.get(v, 0) for v in versions],
                declared=[declared["versions"].get(v, 0) for v in versions] if declared else None,
                virtual_service=declared["virtual_service"] if declared else None,
                conditional_routes=declared["conditional"] if declared else 0,
            )
    for (namespace, name), declared in sorted(routing.items()):
        node_id = "service:%s/%s" % (namespace, name)
        if node_id in nodes and "split" not in nodes[node_id]:
            versions = sorted(declared["versions"])
            nodes[node_id]["split"] = dict(versions=versions, observed=[0 for _v in versions],
                                           declared=[declared["versions"][v] for v in versions],
                                           virtual_service=declared["virtual_service"], conditional_routes=declared["conditional"])
    edges.sort(key=lambda e: (e["kind"], e["source"], e["target"], e["protocol"] if e["kind"] == "call" else ""))
    return dict(nodes=[nodes[k] for k in sorted(nodes)], edges=edges)


def split_text(split: dict) -> str:
    """``v1/v2/v3 declared 50/0/50, observed 48/0/52``."""
    names = "/".join(split["versions"])
    observed = "/".join(str(v) for v in split["observed"])
    if split.get("declared") is None:
        return "%s observed %s" % (names, observed)
    return "%s declared %s, observed %s" % (names, "/".join(str(v) for v in split["declared"]), observed)


# --------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------
def _quote(text: str) -> str:
    return '"%s"' % str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _node_label(node: dict) -> str:
    if node["kind"] == "service":
        lines = [node["name"]]
        if node.get("split"):
            split = node["split"]
            lines.append("/".join(split["versions"]))
            if split.get("declared") is not None:
                lines.append("declared " + "/".join(str(v) for v in split["declared"]))
            lines.append("observed " + "/".join(str(v) for v in split["observed"]))
        return "\n".join(lines)
    if node["kind"] == "external":
        return node["name"]
    extra = " ".join(x for x in (node.get("app"), node.get("version")) if x)
    return node["name"] + ("\n" + extra if extra and extra != node["name"] else "")


def _edge_label(edge: dict) -> str:
    if edge["kind"] == "call":
        if edge["protocol"] == "tcp":
            return "%s conn/s\ntcp %s" % (format_rate(edge["connections_per_second"]), edge["mtls"])
        parts = ["%s rps" % format_rate(edge["rps"])]
        if edge["error_percent"]:
            parts.append("%s%% errors" % format_rate(edge["error_percent"]))
        parts.append("%s %s" % (edge["protocol"], edge["mtls"]))
        return "\n".join(parts)
    text = "%d%%" % edge["observed_percent"]
    if edge.get("declared_percent") is not None:
        text = "observed %d%%\ndeclared %d%%" % (edge["observed_percent"], edge["declared_percent"])
    return text


def _edge_color(edge: dict) -> str:
    if edge["kind"] == "call" and edge["protocol"] == "tcp":
        return "#5f6368"
    if edge["kind"] == "route" and not edge["rps"]:
        return "#9aa0a6"  # idle: no request in the window
    if edge["error_percent"] >= 5:
        return "#d93025"
    if edge["error_percent"] > 0:
        return "#e37400"
    return "#188038"


def render_dot(graph: dict, title: str = "Istio mesh") -> str:
    """Graphviz DOT text: one cluster per namespace, workloads as boxes, services as ellipses."""
    out = [
        "// Istio service graph written by okemesh.istio.mesh_graph (from istio_requests_total); render: dot -Tsvg -o mesh.svg mesh.dot",
        "digraph mesh {",
        "  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=12, labelloc=t, label=%s, nodesep=0.4, ranksep=1.1];" % _quote(title),
        "  node [fontname=\"Helvetica\", fontsize=10];",
        "  edge [fontname=\"Helvetica\", fontsize=9, arrowsize=0.7];",
    ]
    by_ns = {}
    for node in graph["nodes"]:
        by_ns.setdefault(node.get("namespace") or "", []).append(node)
    for namespace in sorted(by_ns):
        indent = "  "
        if namespace:
            out.append("  subgraph %s {" % _quote("cluster_" + namespace))
            out.append("    label=%s; style=\"rounded,dashed\"; color=\"#9aa0a6\";" % _quote("namespace " + namespace))
            indent = "    "
        for node in by_ns[namespace]:
            if node["kind"] == "service":
                attrs = "shape=ellipse, style=filled, fillcolor=\"#e8f0fe\", color=\"#1a73e8\""
            elif node["kind"] == "external":
                attrs = "shape=doubleoctagon, style=filled, fillcolor=\"#f1f3f4\""
            else:
                attrs = "shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\""
            out.append("%s%s [%s, label=%s];" % (indent, _quote(node["id"]), attrs, _quote(_node_label(node))))
        if namespace:
            out.append("  }")
    if not graph["edges"]:
        out.append('  "note:empty" [shape=note, style=filled, fillcolor="#fef7e0", label="no request recorded in the window: send traffic, '
                   'then draw again"];')
    for edge in graph["edges"]:
        style = "solid"
        if edge["kind"] == "route":
            style = "dashed" if edge.get("declared_percent") == 0 or not edge["rps"] else "solid"
        elif edge["mtls"] != "mTLS":
            style = "dashed"
        width = "1.4" if edge["kind"] == "call" else "1.0"
        out.append("  %s -> %s [label=%s, color=%s, fontcolor=%s, style=%s, penwidth=%s];" % (
            _quote(edge["source"]), _quote(edge["target"]), _quote(_edge_label(edge)),
            _quote(_edge_color(edge)), _quote(_edge_color(edge)), style, width))
    out.append("}")
    return "\n".join(out) + "\n"


def _short(node: dict) -> str:
    if node["kind"] == "external":
        return "unknown"
    return "%s/%s" % (node["namespace"], node["name"]) if node.get("namespace") else node["name"]


def edge_lines(graph: dict) -> list:
    """The edges as text, one per line, for job output."""
    nodes = dict((n["id"], n) for n in graph["nodes"])
    lines = []
    for edge in graph["edges"]:
        src, dst = nodes[edge["source"]], nodes[edge["target"]]
        if edge["kind"] == "call":
            if edge["protocol"] == "tcp":
                detail = "%s conn/s, tcp, %s" % (format_rate(edge["connections_per_second"]), edge["mtls"])
            else:
                detail = "%s rps, %s%% errors, %s, %s" % (format_rate(edge["rps"]), format_rate(edge["error_percent"]),
                                                          edge["protocol"], edge["mtls"])
            lines.append("%s -> %s (service): %s" % (_short(src), _short(dst), detail))
        else:
            version = (" (%s)" % dst["version"]) if dst.get("version") else ""
            declared = (", declared %d%%" % edge["declared_percent"]) if edge.get("declared_percent") is not None else ""
            lines.append("  service %s -> %s%s: observed %d%%%s, %s rps" % (
                _short(src), dst["name"], version, edge["observed_percent"], declared, format_rate(edge["rps"])))
    for node in graph["nodes"]:
        if node.get("split"):
            vs = (" (VirtualService %s)" % node["split"]["virtual_service"]) if node["split"].get("virtual_service") else ""
            lines.append("split %s: %s%s" % (_short(node), split_text(node["split"]), vs))
    return lines


# --------------------------------------------------------------------------------------
# files: atomic, only when the content differs
# --------------------------------------------------------------------------------------
def _read(path: str):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise GraphError("cannot read %s: %s" % (path, exc))


def _mode_for(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise GraphError("cannot write %s: %s" % (path, exc))


def output_paths(dot_path: str, formats) -> dict:
    """{format: path}: the pictures sit next to the DOT file (mesh.dot -> mesh.svg, mesh.png)."""
    stem = dot_path[:-4] if dot_path.endswith(".dot") else dot_path
    return dict((fmt, "%s.%s" % (stem, fmt)) for fmt in formats)


def write_outputs(dot_text: str, dot_path: str, formats, render=None, check_mode: bool = False) -> dict:
    """Write the DOT file and render ``formats`` with ``render(fmt, dot_file, out_file)`` (None: no Graphviz).

    Each file is replaced atomically and only when its bytes differ.  Returns dict(changed, files:
    {path: changed}, before (old DOT text or None), rendered (bool)).
    """
    directory = os.path.dirname(os.path.abspath(dot_path))
    if not os.path.isdir(directory):
        raise GraphError("the directory of path %s does not exist: create %s first" % (dot_path, directory))
    data = dot_text.encode("utf-8")
    before = _read(dot_path)
    files = {dot_path: before != data}
    rendered = False
    if render is not None and formats:
        work = tempfile.mkdtemp(prefix="mesh-graph-")
        try:
            src = os.path.join(work, "mesh.dot")
            with open(src, "wb") as handle:
                handle.write(data)
            for fmt, path in sorted(output_paths(dot_path, formats).items()):
                out = os.path.join(work, "mesh." + fmt)
                render(fmt, src, out)
                with open(out, "rb") as handle:
                    picture = handle.read()
                files[path] = _read(path) != picture
                if files[path] and not check_mode:
                    write_atomic(path, picture)
            rendered = True
        finally:
            for name in os.listdir(work):
                os.unlink(os.path.join(work, name))
            os.rmdir(work)
    if files[dot_path] and not check_mode:
        write_atomic(dot_path, data)
    return dict(changed=any(files.values()), files=files, before=before.decode("utf-8", "replace") if before is not None else None,
                rendered=rendered)
