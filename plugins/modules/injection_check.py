#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: injection_check
short_description: Verify that every pod is in the Istio mesh (sidecar, native sidecar or ambient)
version_added: 1.0.0
description:
  - Reads namespaces, pods and the Istio control plane (istiod, the injector MutatingWebhookConfigurations,
    their Services and endpoints, ztunnel) and says, per namespace and per pod, whether the pod is in the mesh.
  - Understands classic sidecars (C(istio-proxy) in C(containers)), native sidecars (C(istio-proxy) in
    C(initContainers) with C(restartPolicy=Always), the default since Istio 1.27, where C(kubectl get pods)
    shows READY 1/1), ambient mode, opt-outs, hostNetwork pods, completed Jobs, gateway pods, pods that need a
    restart to be injected, pods injected by another revision and proxies whose version differs from the
    control plane.
  - Findings carry codes; where C(istioctl analyze) has one the same code is used (V(IST0102) namespace not
    injected, V(IST0103) pod missing proxy, V(IST0123) conflicting injection labels, V(IST0158) proxy version
    differs), the others start with C(OKM). Each finding has a one-line remedy.
  - Pods are read with one LIST per namespace (or one cluster-wide LIST), never one GET per pod. With O(wait)
    the module watches pods and namespaces (and the control plane while it is not ready) and returns as soon as the check
    passes.
  - Read-only. It never changes the cluster and always returns RV(ignore:changed=false).
author:
  - okemesh.istio contributors (@okemesh)
extends_documentation_fragment:
  - okemesh.istio.k8s_auth
options:
  namespaces:
    description:
      - Namespaces to check.
      - Default is every namespace that asks for injection (label C(istio-injection=enabled), C(istio.io/rev)
        or C(istio.io/dataplane-mode=ambient)) plus unlabelled namespaces holding pods that ask for injection
        themselves (for example gateway pods). Then pods are read with one cluster-wide LIST.
      - A namespace named here that does not ask for injection gets finding V(IST0102).
      - An empty list is an error (omit the option to check every namespace that asks for injection).
    type: list
    elements: str
  label_selector:
    description:
      - Only check pods matching this label selector (for example V(app=reviews)).
    type: str
  istio_namespace:
    description:
      - Namespace of istiod, its Services and ztunnel.
    type: str
    default: istio-system
  revision:
    description:
      - The revision (or revision tag) every checked namespace is expected to use.
      - Namespaces asking for another one get finding V(OKM0012).
    type: str
  proxy_version:
    description:
      - The proxy version every sidecar is expected to run (for example V(1.28.0)).
      - Default is the version of the istiod image of the revision that injected the pod.
    type: str
  wait:
    description:
      - Seconds to wait for the result to converge (every pod ready and no finding at the O(fail_on) level,
        V(error) for O(fail_on=never)). The module watches instead of polling and returns as soon as it converges.
      - This is also the bound of the whole run, reading the cluster included; API requests and their retries
        (429 and 5xx answers, connection resets) end within it.
      - V(0) checks once; reading the cluster, retries included, is then bounded by 30 seconds.
      - At most V(86400) (a day).
    type: int
    default: 0
  pod_details:
    description:
      - Which pods RV(pods) lists. V(all) lists every pod checked, V(problems) only pods with a warning or an
        error, V(none) none. The summary, findings and report always cover every pod.
      - On clusters with thousands of pods V(problems) keeps the registered result small (and the module faster).
    type: str
    choices: [all, problems, none]
    default: all
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
  - Needs C(list) and C(watch) on pods (cluster-wide unless O(namespaces) is given), C(list) on namespaces and
    mutatingwebhookconfigurations, and C(list) on deployments, daemonsets, services and endpointslices in
    O(istio_namespace).
  - A pod without a proxy in a namespace that asks for injection while the injector works is reported as
    "restart needed" (the namespace was labelled, or the injector installed, after the pod was created).
    Kubernetes does not record when a label was set, so this is the heuristic C(istioctl analyze) users apply.
  - Injector Services outside O(istio_namespace) are reported as missing.
  - Like kubectl (client-go), API requests answered with 429 are retried, and reads answered with 500, 502, 503 or
    504, or cut by a connection reset, too; C(Retry-After) is honoured (up to 10 seconds), otherwise the delay doubles
    from 0.2 up to 2 seconds, at most 10 retries per request and never past O(wait). RV(stats.api_retries) counts them.
seealso:
  - name: istioctl analyze message codes
    description: The codes IST0102, IST0103, IST0123 and IST0158 mean what they mean there.
    link: https://istio.io/latest/docs/reference/config/analysis/
"""

EXAMPLES = r"""
- name: Verify every namespace that asks for injection
  okemesh.istio.injection_check:
    kubeconfig: ~/.kube/oke-prod
  register: mesh

- name: Print the report
  ansible.builtin.debug:
    msg: "{{ mesh.report_lines }}"

- name: After a rollout, wait up to 5 minutes for bookinfo to converge and fail on warnings too
  okemesh.istio.injection_check:
    namespaces: [bookinfo]
    wait: 300
    fail_on: warning

- name: Canary upgrade - every namespace must be on tag prod-stable and run proxy 1.28.1
  okemesh.istio.injection_check:
    revision: prod-stable
    proxy_version: 1.28.1
    fail_on: never
  register: canary

- name: List the workloads that need a restart
  ansible.builtin.debug:
    msg: "{{ canary.findings | selectattr('code', 'in', ['IST0103', 'OKM0022', 'IST0158']) | map(attribute='remedy') | list }}"
"""

RETURN = r"""
summary:
  description: Counts.
  returned: success
  type: dict
  contains:
    namespaces:
      description: Namespaces checked.
      type: int
    pods:
      description: Pods checked.
      type: int
    by_status:
      description: Pods per status (only statuses that occur).
      type: dict
      sample: {injected: 12, excluded: 1, restart_needed: 2}
    by_namespace:
      description: Per namespace, its mode, revision, pod count and pods per status.
      type: dict
      sample: {bookinfo: {mode: sidecar, revision: default, pods: 6, by_status: {injected: 6}}}
    errors:
      description: Findings of severity error.
      type: int
    warnings:
      description: Findings of severity warning.
      type: int
namespaces:
  description: The namespaces checked with their injection mode.
  returned: success
  type: list
  elements: dict
  sample:
    - {name: bookinfo, mode: sidecar, revision: default, labels: {istio-injection: enabled}, conflicts: [],
       ambient_and_sidecar: false, explicit: false}
control_plane:
  description: istiod Deployments, the injector webhooks used (with CA bundle and service endpoint counts) and ztunnel.
  returned: success
  type: dict
pods:
  description:
    - One entry per pod checked (see O(pod_details)); V(status) is one of injected, gateway, ambient, excluded, completed, not_injected,
      not_ready, restart_needed, missing_proxy, version_skew, ambient_not_captured.
  returned: success
  type: list
  elements: dict
  sample:
    - {namespace: bookinfo, name: reviews-v1-7d8f9c6b5-x2k4p, owner: deployment/reviews-v1, status: injected, severity: ok,
       proxy: native, proxy_ready: true, app_ready: true, proxy_version: 1.28.0, revision: default, reason: native sidecar ready}
findings:
  description: Problems found, aggregated per workload (pod findings list their pods).
  returned: success
  type: list
  elements: dict
  sample:
    - {code: IST0103, name: PodMissingProxy, severity: error, object: deployment/reviews-v2, namespace: bookinfo,
       message: "deployment/reviews-v2: 2 pods without istio-proxy, restart needed",
       remedy: kubectl rollout restart deployment/reviews-v2 -n bookinfo, pods: [reviews-v2-9c8d7e6f5-a, reviews-v2-9c8d7e6f5-b]}
report_lines:
  description: A human-readable report in the style of C(linkerd check), one check per line.
  returned: success
  type: list
  elements: str
  sample:
    - control plane (istio-system)
    - "----------------------------"
    - "\u221a istiod is ready (istio-system, 1/1, version 1.28.0)"
    - "\u00d7 deployment/reviews-v2: 2 pods without istio-proxy, restart needed [IST0103]"
    - "    remedy: kubectl rollout restart deployment/reviews-v2 -n bookinfo"
converged:
  description: True when no pod is still not ready and the result passes at the O(fail_on) level (V(error) for O(fail_on=never)).
  returned: success
  type: bool
elapsed:
  description: Seconds spent, including O(wait).
  returned: success
  type: float
stats:
  description: How the cluster was read.
  returned: success
  type: dict
  contains:
    lists:
      description: LIST requests.
      type: int
    watch_events:
      description: Watch events applied.
      type: int
    relists:
      description: Re-LISTs after 410 Gone.
      type: int
    watch_restarts:
      description: Watches started again after the server closed them.
      type: int
    evaluations:
      description: Times the check ran over the cluster state.
      type: int
    api_retries:
      description: API requests retried (429, 5xx, connection resets); also returned on failure, as RV(api_retries).
      type: int
    api_retry_reasons:
      description: The retries per cause (the HTTP status, V(reset) or V(timeout)).
      type: dict
      sample: {"429": 2, "reset": 1}
api_retries:
  description: API requests retried before the task failed.
  returned: failure to read the cluster
  type: int
"""

import time

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.okemesh.istio.plugins.module_utils import _injection
from ansible_collections.okemesh.istio.plugins.module_utils import _k8s
from ansible_collections.okemesh.istio.plugins.module_utils._errors import OkemeshError


def argument_spec():
    spec = dict(_k8s.K8S_AUTH_ARGSPEC)
    spec.update(
        namespaces=dict(type="list", elements="str"),
        label_selector=dict(type="str"),
        istio_namespace=dict(type="str", default="istio-system"),
        revision=dict(type="str"),
        proxy_version=dict(type="str"),
        wait=dict(type="int", default=0),
        fail_on=dict(type="str", choices=["error", "warning", "never"], default="error"),
        pod_details=dict(type="str", choices=["all", "problems", "none"], default="all"),
    )
    return spec


def _deadline_name(wait):
    if wait:
        return "wait=%d" % wait
    return "the %d s a single check may take (wait=0)" % _injection.CHECK_ONCE_TIMEOUT


def main():
    module = _k8s.K8sModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        options = _injection.validate_options(module.params)
    except OkemeshError as err:
        module.fail_json(**err.fail_kwargs())
    import_error = _k8s.kubernetes_import_error()
    if import_error:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=import_error)
    deadline = _k8s.Deadline(_injection.time_budget(options), _deadline_name(options["wait"]))
    kube = None
    try:
        kube = _k8s.Kube(_k8s.get_api_client(module.params), deadline=deadline)
        plan = _injection.resource_plan(options["namespaces"], options["label_selector"], options["istio_namespace"])
        result = _injection.run(_k8s.Cache(kube, plan), options, time.time, budget=deadline.remaining())
    except OkemeshError as err:
        payload = err.fail_kwargs()
        payload["api_retries"] = kube.stats.count if kube is not None else 0
        module.fail_json(**payload)
    failed = result.pop("failed")
    if failed:
        module.fail_json(
            msg="injection check failed (fail_on=%s): %d error(s), %d warning(s)"
            % (options["fail_on"], result["summary"]["errors"], result["summary"]["warnings"]),
            changed=False,
            **result
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
