#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: mesh_graph
short_description: Draw the Istio service graph from istio_requests_total and the declared routing (DOT, SVG, PNG)
version_added: 1.0.0
description:
  - The successor of Istio's old Servicegraph add-on, without Kiali - who calls whom in the mesh, how often,
    how many calls fail, over which protocol and whether with mutual TLS, next to the traffic split that the
    VirtualServices declare.
  - Nodes are workloads (with their C(app) and C(version)) and services, grouped by namespace. A C(call) edge goes
    from a source workload to a service (requests per second, error share, protocol, mTLS from
    C(connection_security_policy)); a C(route) edge goes from a service to the workload that answered (the observed
    share of the service's traffic and, where a VirtualService splits the traffic between DestinationRule subsets,
    the declared weight - for example reviews v1/v2/v3 declared 50/0/50, observed 48/0/52).
  - Prometheus is asked ONE query per metric (C(istio_requests_total) and C(istio_tcp_connections_opened_total),
    C(sum by) Istio's standard labels over O(window)), never one per workload. VirtualServices and
    DestinationRules are read with one LIST each.
  - Writes a Graphviz DOT file at O(path) and renders O(formats) with Graphviz C(dot) next to it. Without C(dot)
    the DOT file is still written and RV(render_hint) says how to render it.
  - Deterministic - nodes and edges are sorted, rates rounded to O(precision) significant digits and shares to
    whole percents, and no timestamp is written, so the same traffic gives the same bytes. Files are replaced
    atomically, and only when their content differs, so a re-run over the same traffic reports RV(ignore:changed=false).
author:
  - okemesh.istio contributors (@okemesh)
extends_documentation_fragment:
  - okemesh.istio.k8s_auth
options:
  path:
    description:
      - Where to write the DOT file (for example V(/work/mesh.dot)). The pictures are written next to it with the
        format as extension (V(/work/mesh.svg)). The directory must exist.
    type: path
    required: true
  formats:
    description:
      - Pictures to render with Graphviz C(dot). V([]) writes the DOT file only.
    type: list
    elements: str
    choices: [svg, png]
    default: [svg]
  namespaces:
    description:
      - Only traffic whose source or destination workload lives in one of these namespaces.
      - Default is the whole mesh.
    type: list
    elements: str
  window:
    description:
      - The time window of the rates, as a Prometheus duration (V(5m), V(1h), V(90s)).
    type: str
    default: 5m
  time:
    description:
      - Evaluate the queries at this time (Unix seconds or RFC 3339) instead of now. With a fixed time the graph is
        exactly reproducible.
    type: str
  reporter:
    description:
      - Which proxy's view of each request to draw. V(destination) (the receiving sidecar) sees every request that
        reaches a meshed workload, including those from the ingress gateway; V(source) also sees calls to
        destinations without a sidecar.
    type: str
    choices: [destination, source]
    default: destination
  include_tcp:
    description:
      - Also draw TCP connections (C(istio_tcp_connections_opened_total)), for example to databases.
    type: bool
    default: true
  routing:
    description:
      - Read VirtualServices and DestinationRules (C(networking.istio.io)) and show the declared weights next to
        the observed split.
    type: bool
    default: true
  idle_workloads:
    description:
      - Also draw the workloads that received no request in O(window) behind the services that did (read from the
        Services' selectors and the pods, one LIST each per namespace), with an observed share of 0 - for
        example reviews-v2 under a 50/0/50 split.
    type: bool
    default: true
  precision:
    description:
      - Significant digits of the rates. Fewer digits make the files change less often under steady traffic.
    type: int
    default: 2
  title:
    description:
      - Title drawn on the picture. Default names the window and the reporter.
    type: str
  dot_binary:
    description:
      - Path of Graphviz C(dot). Default is C(dot) on the PATH.
    type: path
  addons_namespace:
    description:
      - Default namespace of the Prometheus Service.
    type: str
    default: istio-system
  prometheus:
    description:
      - How to reach Prometheus.
      - By default through the Kubernetes API server's service proxy
        (C(/api/v1/namespaces/<namespace>/services/<service>:<port>/proxy/)), which needs no port-forward and
        only RBAC C(get) on C(services/proxy). With O(prometheus.url) the add-on is reached directly instead.
    type: dict
    default: {}
    suboptions:
      namespace:
        description:
          - Namespace of the add-on's Service. Default is O(addons_namespace).
        type: str
      service:
        description:
          - Name of the add-on's Service.
        type: str
        default: prometheus
      port:
        description:
          - Port of the Service, by number or by name.
        type: str
        default: "9090"
      scheme:
        description:
          - V(https) asks the service proxy for C(https:<service>:<port>) (the add-on serves TLS).
        type: str
        choices: [http, https]
        default: http
      path_prefix:
        description:
          - Path under which the add-on serves its API.
        type: str
        default: ""
      url:
        description:
          - Explicit base URL of the add-on (for example exposed through the ingress gateway, or an existing
            server), used instead of the service proxy.
        type: str
      validate_certs:
        description:
          - Verify the TLS certificate of O(prometheus.url).
        type: bool
        default: true
      bearer_token:
        description:
          - Bearer token sent to O(prometheus.url). Never returned.
        type: str
  request_timeout:
    description:
      - Seconds to wait for one HTTP answer.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    description: Queries and renders, and reports whether the files would change, without writing them.
  diff_mode:
    support: full
    description: Shows the change of the DOT file.
  idempotent:
    support: full
    description: The same traffic gives the same bytes; files are only written when their content differs.
notes:
  - Needs C(get) on C(services/proxy) in the Prometheus namespace (unless O(prometheus.url) is given), C(list) on
    virtualservices and destinationrules, and with O(idle_workloads) on services and pods (cluster-wide without
    O(namespaces)). A routing read refused is a warning; the graph is drawn without declared weights.
  - Under traffic that keeps changing, the rates change and so do the files. Use O(time) for a reproducible picture.
  - The declared split is the one of the VirtualService's default HTTP route (the last route without C(match));
    routes with a C(match) are counted in the service's C(conditional_routes).
seealso:
  - module: okemesh.istio.telemetry_check
  - name: Graphviz
    description: The dot layout program that renders the DOT file.
    link: https://graphviz.org/doc/info/command.html
"""

EXAMPLES = r"""
- name: Draw bookinfo's service graph next to the other files of this cluster
  okemesh.istio.mesh_graph:
    kubeconfig: ~/.kube/oke-prod
    namespaces: [bookinfo]
    path: "{{ playbook_dir }}/work/{{ inventory_hostname }}/mesh.dot"
    formats: [svg, png]
  register: graph

- name: Print the edges
  ansible.builtin.debug:
    msg: "{{ graph.edge_lines }}"

- name: The observed split of reviews, for a later assertion
  ansible.builtin.set_fact:
    reviews_split: "{{ (graph.nodes | selectattr('id', 'equalto', 'service:bookinfo/reviews') | first).split }}"

- name: Use an existing Prometheus, a longer window and a fixed evaluation time
  okemesh.istio.mesh_graph:
    path: /tmp/mesh.dot
    window: 1h
    time: "2026-12-01T12:00:00Z"
    prometheus:
      url: https://prometheus.example.com
"""

RETURN = r"""
nodes:
  description: Workloads, services and external sources, sorted by id.
  returned: success
  type: list
  elements: dict
  sample:
    - {id: "service:bookinfo/reviews", kind: service, namespace: bookinfo, name: reviews,
       split: {versions: [v1, v2, v3], declared: [50, 0, 50], observed: [48, 0, 52], virtual_service: bookinfo/reviews,
               conditional_routes: 0}}
    - {id: "workload:bookinfo/reviews-v3", kind: workload, namespace: bookinfo, name: reviews-v3, app: reviews, version: v3}
edges:
  description:
    - C(call) edges (source workload to service) with C(rps), C(error_percent), C(protocol), C(mtls)
      (and C(connections_per_second) for TCP); C(route) edges (service to workload) with C(rps), C(error_percent),
      C(observed_percent) and C(declared_percent) (null when no VirtualService splits the service).
  returned: success
  type: list
  elements: dict
  sample:
    - {kind: call, source: "workload:bookinfo/productpage-v1", target: "service:bookinfo/reviews", rps: 1.0,
       error_percent: 0.0, protocol: http, mtls: mTLS, connections_per_second: null}
    - {kind: route, source: "service:bookinfo/reviews", target: "workload:bookinfo/reviews-v3", rps: 0.52,
       error_percent: 0.0, observed_percent: 52, declared_percent: 50}
edge_lines:
  description: The edges as text, one per line, for job output.
  returned: success
  type: list
  elements: str
  sample:
    - "bookinfo/productpage-v1 -> bookinfo/reviews (service): 1 rps, 0% errors, http, mTLS"
    - "  service bookinfo/reviews -> reviews-v3 (v3): observed 52%, declared 50%, 0.52 rps"
    - "split bookinfo/reviews: v1/v2/v3 declared 50/0/50, observed 48/0/52 (VirtualService bookinfo/reviews)"
dot_path:
  description: The DOT file.
  returned: success
  type: str
pictures:
  description: The rendered pictures by format (only those rendered).
  returned: success
  type: dict
  sample: {svg: /work/mesh.svg}
rendered:
  description: Whether Graphviz rendered the pictures.
  returned: success
  type: bool
render_hint:
  description: How to render the DOT file when Graphviz C(dot) is missing.
  returned: when dot was not found and O(formats) is not empty
  type: str
files:
  description: Every file with whether it changed (or would change in check mode).
  returned: success
  type: dict
queries:
  description: The PromQL queries sent (one per metric).
  returned: success
  type: list
  elements: str
routing_warning:
  description: Why the declared routing could not be read (the graph has no declared weights then).
  returned: when VirtualServices or DestinationRules could not be read
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.okemesh.istio.plugins.module_utils import _addons
from ansible_collections.okemesh.istio.plugins.module_utils import _graph
from ansible_collections.okemesh.istio.plugins.module_utils import _k8s
from ansible_collections.okemesh.istio.plugins.module_utils import _promql
from ansible_collections.okemesh.istio.plugins.module_utils._errors import GraphError, InputError, KubernetesError, OkemeshError


def argument_spec():
    spec = dict(_k8s.K8S_AUTH_ARGSPEC)
    spec.update(
        path=dict(type="path", required=True),
        formats=dict(type="list", elements="str", choices=["svg", "png"], default=["svg"]),
        namespaces=dict(type="list", elements="str"),
        window=dict(type="str", default="5m"),
        time=dict(type="str"),
        reporter=dict(type="str", choices=["destination", "source"], default="destination"),
        include_tcp=dict(type="bool", default=True),
        routing=dict(type="bool", default=True),
        idle_workloads=dict(type="bool", default=True),
        precision=dict(type="int", default=2),
        title=dict(type="str"),
        dot_binary=dict(type="path"),
        addons_namespace=dict(type="str", default="istio-system"),
        prometheus=_addons.addon_argspec("prometheus"),
        request_timeout=dict(type="int", default=30),
    )
    return spec


def validate(params):
    if not _promql.valid_duration(params["window"]):
        raise InputError("window must be a Prometheus duration such as 5m, 1h or 90s, got %r" % params["window"])
    for name in params["namespaces"] or []:
        if not _promql.valid_namespace(name):
            raise InputError("namespaces: %r is not a valid namespace name" % name)
    if not 1 <= params["precision"] <= 6:
        raise InputError("precision is a number of significant digits between 1 and 6, got %d" % params["precision"])
    if params["request_timeout"] <= 0:
        raise InputError("request_timeout must be a positive number of seconds, got %d" % params["request_timeout"])
    url = params["prometheus"].get("url")
    if url and not url.startswith(("http://", "https://")):
        raise InputError("prometheus.url must start with http:// or https://, got %r" % url)
    if os.path.isdir(params["path"]):
        raise InputError("path %s is a directory: give the DOT file's path, for example %s" % (
            params["path"], os.path.join(params["path"], "mesh.dot")))


ISTIO_VERSIONS = ("v1", "v1beta1")


def list_istio(kube, plural, namespaces):
    """LIST a networking.istio.io kind (v1, then v1beta1); ([], None) when Istio's CRDs are not installed."""
    for version in ISTIO_VERSIONS:
        base = "/apis/networking.istio.io/%s" % version
        try:
            if namespaces:
                items = []
                for ns in namespaces:
                    items.extend(kube.list("%s/namespaces/%s/%s" % (base, ns, plural))[0])
                return items
            return kube.list("%s/%s" % (base, plural))[0]
        except KubernetesError as err:
            if err.details.get("status") != 404:
                raise
    return []


def list_core(kube, plural, namespaces):
    """LIST pods or services in ``namespaces`` (one LIST each), or cluster-wide."""
    if not namespaces:
        return kube.list("/api/v1/%s" % plural)[0]
    items = []
    for ns in namespaces:
        items.extend(kube.list("/api/v1/namespaces/%s/%s" % (ns, plural))[0])
    return items


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        validate(params)
    except InputError as err:
        module.fail_json(**err.fail_kwargs())
    use_k8s = params["routing"] or params["idle_workloads"] or not params["prometheus"].get("url")
    if use_k8s:
        import_error = _k8s.kubernetes_import_error()
        if import_error:
            module.fail_json(msg=missing_required_lib("kubernetes"), exception=import_error)
    namespaces = sorted(set(params["namespaces"] or []))
    result = dict(changed=False, dot_path=params["path"], pictures={}, rendered=False)
    try:
        api_client = kube = None
        if use_k8s:
            api_client = _k8s.get_api_client(params)
            kube = _k8s.Kube(api_client, request_timeout=params["request_timeout"])
        transport = _addons.endpoint("prometheus", params["prometheus"], params["addons_namespace"], api_client=api_client,
                                     headers=kube.auth_headers if kube else None, timeout=params["request_timeout"])
        prom = _addons.Prometheus(transport, evaluation_time=params["time"])
        requests = prom.query(_promql.grouped_increase(_promql.REQUESTS, _promql.REQUEST_LABELS, params["window"], namespaces,
                                                       reporter=params["reporter"], function="observed_rate"))
        tcp = []
        if params["include_tcp"]:
            tcp = prom.query(_promql.grouped_increase(_promql.TCP_OPENED, _promql.TCP_LABELS, params["window"], namespaces,
                                                      reporter=params["reporter"], function="observed_rate"))
        routing = {}
        if params["routing"]:
            try:
                routing = _graph.declared_routing(list_istio(kube, "virtualservices", namespaces),
                                                  list_istio(kube, "destinationrules", namespaces))
            except KubernetesError as err:
                result["routing_warning"] = "declared routing not shown: %s" % err.msg
                module.warn(result["routing_warning"])
        members = None
        if params["idle_workloads"]:
            members = _graph.service_members(list_core(kube, "services", namespaces), list_core(kube, "pods", namespaces))
        graph = _graph.build_graph(requests, tcp, routing, digits=params["precision"], members=members)
        title = params["title"] or "Istio mesh%s: rates over %s (reporter=%s)" % (
            (" - " + ", ".join(namespaces)) if namespaces else "", params["window"], params["reporter"])
        dot_text = _graph.render_dot(graph, title)
        if not graph["edges"]:
            module.warn("no istio_requests_total or istio_tcp_connections_opened_total in the last %s%s: the graph is empty; "
                        "send traffic (for bookinfo: curl http://<gateway>/productpage), or run okemesh.istio.telemetry_check"
                        % (params["window"], (" for " + ", ".join(namespaces)) if namespaces else ""))
        dot = params["dot_binary"] or module.get_bin_path("dot")
        render = None
        if params["formats"] and dot:
            def render(fmt, src, out):
                rc, _out, err = module.run_command([dot, "-T" + fmt, "-o", out, src])
                if rc != 0:
                    raise GraphError("%s -T%s failed (rc=%d): %s" % (dot, fmt, rc, err.strip()), rc=rc, stderr=err)
        elif params["formats"]:
            result["render_hint"] = ("Graphviz dot was not found, so only the DOT file was written. Install graphviz "
                                     "(apt-get install graphviz, dnf install graphviz or brew install graphviz) and run: %s"
                                     % "; ".join("dot -T%s -o %s %s" % (fmt, path, params["path"])
                                                 for fmt, path in sorted(_graph.output_paths(params["path"], params["formats"]).items())))
            module.warn(result["render_hint"])
        written = _graph.write_outputs(dot_text, params["path"], params["formats"], render=render, check_mode=module.check_mode)
    except OkemeshError as err:
        module.fail_json(**err.fail_kwargs())
    result.update(
        changed=written["changed"],
        files=written["files"],
        rendered=written["rendered"],
        pictures=dict((fmt, path) for fmt, path in _graph.output_paths(params["path"], params["formats"]).items()) if written["rendered"] else {},
        nodes=graph["nodes"],
        edges=graph["edges"],
        edge_lines=_graph.edge_lines(graph),
        queries=list(prom.queries),
    )
    if module._diff and written["files"][params["path"]]:
        result["diff"] = dict(before=written["before"] or "", after=dot_text,
                              before_header=params["path"] if written["before"] is not None else "%s (absent)" % params["path"],
                              after_header=params["path"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
