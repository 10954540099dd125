#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: telemetry_check
short_description: Prove that Istio telemetry flows (Prometheus series and targets, Grafana dashboards, Jaeger traces, Kiali)
version_added: 1.0.0
description:
  - Checks what makes Istio's dashboards empty after an install, and reports in the style of
    M(okemesh.istio.injection_check) - findings with codes, severities, messages and remedies, a C(linkerd check)
    style report, O(fail_on) and a bounded wait.
  - V(series) - for every meshed workload (running pods that carry C(istio-proxy)) of O(namespaces),
    C(istio_requests_total) has series with Istio's standard labels (C(reporter), C(source_workload),
    C(destination_workload), C(destination_service_name), C(request_protocol), C(response_code), ...) over
    O(window). A workload that its callers report requests to while its own sidecar reports none is not scraped;
    a workload without any series received no traffic.
  - V(protocol) - traffic counted as TCP (C(istio_tcp_*) series and no C(istio_requests_total)) because the
    destination Service's port declares no protocol (name C(http-*)/C(grpc-*) or C(appProtocol)), and Service ports
    of O(namespaces) that do not follow Istio's port naming (V(IST0118), as C(istioctl analyze)).
  - V(errors) - the share of non-2xx responses per destination workload above O(error_threshold).
  - V(targets) - Prometheus' active scrape targets (C(/api/v1/targets)) for the sidecars of O(namespaces) and for
    istiod are up, and every meshed pod is a target.
  - V(grafana) - Istio's dashboards (O(grafana_dashboards)) are provisioned, searched by title with C(/api/search).
  - V(jaeger) - Jaeger's query API (C(/api/services), C(/api/traces)) has traces of one of O(jaeger_services).
  - V(kiali) - Kiali answers its status API (C(/kiali/api/status)) and is running. Not in the default O(checks).
  - The add-ons are reached through the Kubernetes API server's service proxy by default (no port-forward,
    works from AWX), or through an explicit URL each. A missing add-on (HTTP 404), a service proxy refused by
    RBAC (403), an add-on without ready endpoints (503), an unreachable URL and a Prometheus error each become a
    finding with a remedy.
  - Prometheus is asked ONE query per metric (C(sum by) Istio's labels), never one per workload.
  - Read-only. It never changes anything and always returns RV(ignore:changed=false).
author:
  - okemesh.istio contributors (@okemesh)
extends_documentation_fragment:
  - okemesh.istio.k8s_auth
options:
  checks:
    description:
      - The checks to run (see the description).
    type: list
    elements: str
    choices: [series, protocol, errors, targets, grafana, jaeger, kiali]
    default: [series, protocol, errors, targets, grafana, jaeger]
  namespaces:
    description:
      - Namespaces whose workloads, Services and scrape targets are checked.
      - Default is every namespace (pods and Services are then read with one cluster-wide LIST each).
    type: list
    elements: str
  window:
    description:
      - The time window of the Prometheus queries and of the Jaeger trace search, as a Prometheus duration
        (V(5m), V(1h), V(90s)).
    type: str
    default: 5m
  error_threshold:
    description:
      - The share of non-2xx responses (between V(0) and V(1)) above which a workload gets finding V(OKM0115).
    type: float
    default: 0.05
  istio_namespace:
    description:
      - Namespace of istiod (used in the remedies of the istiod scrape-target findings).
    type: str
    default: istio-system
  addons_namespace:
    description:
      - Default namespace of the add-ons' Services.
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
  grafana:
    description:
      - How to reach Grafana.
      - By default through the Kubernetes API server's service proxy
        (C(/api/v1/namespaces/<namespace>/services/<service>:<port>/proxy/)), which needs no port-forward and
        only RBAC C(get) on C(services/proxy). With O(grafana.url) the add-on is reached directly instead.
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
        default: grafana
      port:
        description:
          - Port of the Service, by number or by name.
        type: str
        default: "3000"
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
          - Verify the TLS certificate of O(grafana.url).
        type: bool
        default: true
      bearer_token:
        description:
          - Bearer token sent to O(grafana.url). Never returned.
        type: str
  jaeger:
    description:
      - How to reach Jaeger (its query API).
      - By default through the Kubernetes API server's service proxy
        (C(/api/v1/namespaces/<namespace>/services/<service>:<port>/proxy/)), which needs no port-forward and
        only RBAC C(get) on C(services/proxy). With O(jaeger.url) the add-on is reached directly instead.
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
        default: tracing
      port:
        description:
          - Port of the Service, by number or by name.
        type: str
        default: "80"
      scheme:
        description:
          - V(https) asks the service proxy for C(https:<service>:<port>) (the add-on serves TLS).
        type: str
        choices: [http, https]
        default: http
      path_prefix:
        description:
          - Path under which the add-on serves its API (V(/jaeger) is the base path of Istio's sample add-on).
        type: str
        default: "/jaeger"
      url:
        description:
          - Explicit base URL of the add-on (for example exposed through the ingress gateway, or an existing
            server), used instead of the service proxy.
        type: str
      validate_certs:
        description:
          - Verify the TLS certificate of O(jaeger.url).
        type: bool
        default: true
      bearer_token:
        description:
          - Bearer token sent to O(jaeger.url). Never returned.
        type: str
  kiali:
    description:
      - How to reach Kiali.
      - By default through the Kubernetes API server's service proxy
        (C(/api/v1/namespaces/<namespace>/services/<service>:<port>/proxy/)), which needs no port-forward and
        only RBAC C(get) on C(services/proxy). With O(kiali.url) the add-on is reached directly instead.
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
        default: kiali
      port:
        description:
          - Port of the Service, by number or by name.
        type: str
        default: "20001"
      scheme:
        description:
          - V(https) asks the service proxy for C(https:<service>:<port>) (the add-on serves TLS).
        type: str
        choices: [http, https]
        default: http
      path_prefix:
        description:
          - Path under which the add-on serves its API (V(/kiali) is the base path of Istio's sample add-on).
        type: str
        default: "/kiali"
      url:
        description:
          - Explicit base URL of the add-on (for example exposed through the ingress gateway, or an existing
            server), used instead of the service proxy.
        type: str
      validate_certs:
        description:
          - Verify the TLS certificate of O(kiali.url).
        type: bool
        default: true
      bearer_token:
        description:
          - Bearer token sent to O(kiali.url). Never returned.
        type: str
  grafana_dashboards:
    description:
      - Titles of the Grafana dashboards that must exist.
    type: list
    elements: str
    default: [Istio Mesh Dashboard, Istio Service Dashboard, Istio Workload Dashboard, Istio Control Plane Dashboard, Istio Performance Dashboard]
  jaeger_services:
    description:
      - Services of which at least one must have traces. Jaeger names Istio's spans C(<workload>.<namespace>),
        so V(productpage) matches C(productpage.bookinfo).
    type: list
    elements: str
    default: [istio-ingressgateway, productpage]
  wait_timeout:
    description:
      - Seconds to keep checking until the result passes at the O(fail_on) level (V(error) for O(fail_on=never)),
        every O(wait_interval) seconds. V(0) checks once.
    type: int
    default: 0
  wait_interval:
    description:
      - Seconds between two checks while waiting.
    type: int
    default: 5
  request_timeout:
    description:
      - Seconds to wait for one HTTP answer.
    type: int
    default: 30
  fail_on:
    description:
      - V(error) fails the task when any finding is an error, V(warning) when any finding is a warning or an
        error, V(never) only reports.
    type: str
    choices: [error, warning, never]
    default: error
attributes:
  check_mode:
    support: full
    description: The module only reads; check mode runs the same checks.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
  idempotent:
    support: full
    description: Read-only; RV(ignore:changed) is always false.
notes:
  - Needs C(list) on pods and services in O(namespaces) (cluster-wide without O(namespaces)) and C(get) on
    C(services/proxy) in the add-ons' namespaces (unless every add-on has a C(url)).
  - "Finding codes: OKM0101 add-on Service not found, OKM0102 access denied, OKM0103 no ready endpoint, OKM0104
    no usable answer, OKM0105 Prometheus query error, OKM0110 no istio_requests_total at all, OKM0111 workload
    without traffic, OKM0112 workload not scraped, OKM0113 series without Istio's labels, OKM0114 traffic counted as
    TCP, IST0118 port name without protocol, OKM0115 non-2xx share above the threshold, OKM0120-OKM0124 scrape
    targets, OKM0130 Grafana dashboards missing, OKM0140/OKM0141 Jaeger service/traces missing, OKM0150 Kiali not running."
  - Rates need traffic inside O(window). Istio samples 1% of requests for tracing by default; the demo profile
    samples 100%.
seealso:
  - module: okemesh.istio.injection_check
  - module: okemesh.istio.mesh_graph
  - name: Istio standard metrics
    description: The metric and label names the checks query.
    link: https://istio.io/latest/docs/reference/config/metrics/
  - name: Istio protocol selection
    description: How a Service port name or appProtocol selects HTTP or TCP.
    link: https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/
"""

EXAMPLES = r"""
- name: Prove that bookinfo's telemetry flows, waiting up to 2 minutes for Prometheus to scrape
  okemesh.istio.telemetry_check:
    kubeconfig: ~/.kube/oke-prod
    namespaces: [bookinfo]
    wait_timeout: 120
  register: telemetry

- name: Print the report
  ansible.builtin.debug:
    msg: "{{ telemetry.report_lines }}"

- name: Use an existing Prometheus and Grafana exposed through the gateway, with Kiali
  okemesh.istio.telemetry_check:
    namespaces: [shop, payments]
    checks: [series, protocol, errors, targets, grafana, kiali]
    window: 15m
    error_threshold: 0.01
    prometheus:
      url: https://prometheus.example.com
    grafana:
      url: https://grafana.example.com
      bearer_token: "{{ grafana_token }}"
    fail_on: warning

- name: Only report, and list the remedies
  okemesh.istio.telemetry_check:
    namespaces: [bookinfo]
    fail_on: never
  register: telemetry

- name: Show what to fix
  ansible.builtin.debug:
    msg: "{{ telemetry.findings | map(attribute='remedy') | list }}"
"""

RETURN = r"""
passed:
  description: True when no finding reaches the O(fail_on) level (V(error) for O(fail_on=never)).
  returned: success
  type: bool
summary:
  description: Counts, and the state of every check (ok, warning, error, skipped).
  returned: success
  type: dict
  sample: {errors: 0, warnings: 1, checks: {series: ok, protocol: ok, errors: warning, targets: ok, grafana: ok, jaeger: ok}}
checks:
  description: Per check, the lines that passed (V(ok)) and why it was not evaluated (V(skipped)).
  returned: success
  type: dict
  sample: {series: {ok: ["istio_requests_total: 620 request(s) in the last 5m; 6 of 6 meshed workload(s) report series"], skipped: null}}
findings:
  description: Problems found.
  returned: success
  type: list
  elements: dict
  sample:
    - {code: OKM0114, name: TrafficCountedAsTcp, severity: error, check: protocol, object: service/bookinfo/details,
       message: "service/bookinfo/details: traffic is counted as TCP (istio_tcp_*, no istio_requests_total) because port 9080
         (name 'web') does not declare a protocol",
       remedy: "name the port http-<suffix> (or grpc-<suffix>) or set appProtocol: http in Service details (namespace bookinfo)",
       namespace: bookinfo, service: details}
workloads:
  description: The meshed workloads found in O(namespaces) (name, namespace, app, version, number of pods).
  returned: success
  type: list
  elements: dict
  sample: [{namespace: bookinfo, name: reviews-v2, app: reviews, version: v2, pods: 1}]
report_lines:
  description: A human-readable report in the style of C(linkerd check), one check per line.
  returned: success
  type: list
  elements: str
  sample:
    - "Prometheus: istio_requests_total series"
    - "----------------------------------------"
    - "\u221a istio_requests_total: 620 request(s) in the last 5m; 6 of 6 meshed workload(s) report series"
    - "\u00d7 grafana not found: service proxy istio-system/grafana:3000 answered HTTP 404 [OKM0101]"
queries:
  description: The PromQL queries sent in the last round (one per metric).
  returned: success
  type: list
  elements: str
attempts:
  description: How many times the checks ran (more than one while O(wait_timeout) waits).
  returned: success
  type: int
elapsed:
  description: Seconds spent, including the wait.
  returned: success
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.okemesh.istio.plugins.module_utils import _addons
from ansible_collections.okemesh.istio.plugins.module_utils import _k8s
from ansible_collections.okemesh.istio.plugins.module_utils import _promql
from ansible_collections.okemesh.istio.plugins.module_utils import _telemetry
from ansible_collections.okemesh.istio.plugins.module_utils._errors import OkemeshError, InputError

ADDONS = ("prometheus", "grafana", "jaeger", "kiali")


def argument_spec():
    spec = dict(_k8s.K8S_AUTH_ARGSPEC)
    spec.update(
        checks=dict(type="list", elements="str", choices=list(_telemetry.CHECK_NAMES), default=list(_telemetry.DEFAULT_CHECKS)),
        namespaces=dict(type="list", elements="str"),
        window=dict(type="str", default="5m"),
        error_threshold=dict(type="float", default=0.05),
        istio_namespace=dict(type="str", default="istio-system"),
        addons_namespace=dict(type="str", default="istio-system"),
        grafana_dashboards=dict(type="list", elements="str", default=list(_telemetry.DEFAULT_DASHBOARDS)),
        jaeger_services=dict(type="list", elements="str", default=list(_telemetry.DEFAULT_JAEGER_SERVICES)),
        wait_timeout=dict(type="int", default=0),
        wait_interval=dict(type="int", default=5),
        request_timeout=dict(type="int", default=30),
        fail_on=dict(type="str", choices=["error", "warning", "never"], default="error"),
    )
    for addon in ADDONS:
        spec[addon] = _addons.addon_argspec(addon)
    return spec


def validate(params):
    """Raise InputError naming the option to fix."""
    if not params["checks"]:
        raise InputError("checks is empty: name at least one of %s" % ", ".join(_telemetry.CHECK_NAMES))
    if not _promql.valid_duration(params["window"]):
        raise InputError("window must be a Prometheus duration such as 5m, 1h or 90s, got %r" % params["window"])
    if not 0 <= params["error_threshold"] <= 1:
        raise InputError("error_threshold is a share between 0 and 1 (0.05 = 5%%), got %s" % params["error_threshold"])
    for name in params["namespaces"] or []:
        if not _promql.valid_namespace(name):
            raise InputError("namespaces: %r is not a valid namespace name" % name)
    for option in ("wait_timeout", "wait_interval", "request_timeout"):
        if params[option] < 0 or (option != "wait_timeout" and params[option] == 0):
            raise InputError("%s must be a positive number of seconds, got %d" % (option, params[option]))
    for addon in ADDONS:
        url = params[addon].get("url")
        if url and not url.startswith(("http://", "https://")):
            raise InputError("%s.url must start with http:// or https://, got %r" % (addon, url))


def needs_kubernetes(params):
    checks = set(params["checks"])
    if checks & set(["series", "protocol", "targets"]):
        return True
    used = set(_telemetry.CHECK_ADDON[c] for c in checks)
    return any(not params[a].get("url") for a in used)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        validate(params)
    except InputError as err:
        module.fail_json(**err.fail_kwargs())
    api_client = kube = headers = None
    if needs_kubernetes(params):
        import_error = _k8s.kubernetes_import_error()
        if import_error:
            module.fail_json(msg=missing_required_lib("kubernetes"), exception=import_error)
    try:
        if needs_kubernetes(params):
            api_client = _k8s.get_api_client(params)
            kube = _k8s.Kube(api_client, request_timeout=params["request_timeout"])
            headers = kube.auth_headers
        transports, meta = {}, {}
        for addon in ADDONS:
            options = params[addon]
            transports[addon] = _addons.endpoint(addon, options, params["addons_namespace"], api_client=api_client,
                                                 headers=headers, timeout=params["request_timeout"])
            meta[addon] = (None, None) if options.get("url") else (options.get("namespace") or params["addons_namespace"],
                                                                   options.get("service"))
        clients = _telemetry.Clients(kube=kube, prometheus=_addons.Prometheus(transports["prometheus"]),
                                     grafana=transports["grafana"], jaeger=transports["jaeger"], kiali=transports["kiali"],
                                     addon_meta=meta)
        options = dict((k, params[k]) for k in ("checks", "namespaces", "window", "error_threshold", "istio_namespace",
                                                "grafana_dashboards", "jaeger_services", "wait_timeout", "wait_interval", "fail_on"))
        result = _telemetry.run(clients, options, time.time, time.sleep)
    except OkemeshError as err:
        module.fail_json(**err.fail_kwargs())
    failed = result.pop("failed")
    if failed:
        module.fail_json(
            msg="telemetry check failed (fail_on=%s): %d error(s), %d warning(s)"
            % (params["fail_on"], result["summary"]["errors"], result["summary"]["warnings"]),
            changed=False,
            **result
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
