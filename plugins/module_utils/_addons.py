# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reaching Istio's add-ons (Prometheus, Grafana, Jaeger, Kiali) over HTTP.

Two ways, one interface (``get(path, query) -> bytes``):

* ``ServiceProxy``: through the Kubernetes API server's service proxy,
  ``/api/v1/namespaces/<ns>/services/[https:]<name>:<port>/proxy/<path>``, with the
  kubernetes client's ``ApiClient`` (so the kubeconfig's auth and TLS settings apply, and no
  port-forward is needed: it works from AWX);
* ``DirectURL``: an explicit URL (the add-on exposed through a gateway, or an existing
  Prometheus), with ``ansible.module_utils.urls.open_url``.

Every failure becomes ``AddonError`` with a ``kind`` the checks turn into a finding:
not_found (the Service does not exist), forbidden (RBAC on services/proxy, or 401),
unavailable (503: no ready endpoint), unreachable, http_error, bad_answer, query_error.

This is a private module_utils file: it may change at any time.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import json
import time

from ansible.module_utils.six.moves.urllib.parse import urlencode, quote
from ansible.module_utils.urls import open_url

from ansible_collections.okemesh.istio.plugins.module_utils._errors import AddonError
from ansible_collections.okemesh.istio.plugins.module_utils import _k8s, _promql

# Where Istio's samples/addons put each add-on (Service name, port) and the path prefix of its API.
ADDON_DEFAULTS = dict(
    prometheus=dict(service="prometheus", port="9090", prefix=""),
    grafana=dict(service="grafana", port="3000", prefix=""),
    jaeger=dict(service="tracing", port="80", prefix="/jaeger"),  # the addon's jaeger_query base_path
    kiali=dict(service="kiali", port="20001", prefix="/kiali"),  # Kiali's web_root
)


def addon_argspec(addon: str) -> dict:
    """The sub-options of one add-on option (same for the four add-ons, defaults differ)."""
    defaults = ADDON_DEFAULTS[addon]
    return dict(
        type="dict",
        default={},
        options=dict(
            namespace=dict(type="str"),
            service=dict(type="str", default=defaults["service"]),
            port=dict(type="str", default=defaults["port"]),
            scheme=dict(type="str", choices=["http", "https"], default="http"),
            path_prefix=dict(type="str", default=defaults["prefix"]),
            url=dict(type="str"),
            validate_certs=dict(type="bool", default=True),
            bearer_token=dict(type="str", no_log=True),
        ),
    )


def _status_reason(body: bytes):
    """(reason, details.kind, message) of a Kubernetes Status body, or (None, None, text)."""
    try:
        data = json.loads(body.decode("utf-8", "replace")) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("kind") == "Status":
        return data.get("reason"), (data.get("details") or {}).get("kind"), data.get("message")
    if isinstance(data, dict) and data.get("status") == "error":  # Prometheus' error answer
        return None, None, "%s: %s" % (data.get("errorType") or "error", data.get("error") or "")
    text = body.decode("utf-8", "replace").strip() if body else ""
    return None, None, text[:300]


def classify_http_failure(addon: str, target: str, status, body: bytes = b"", proxied: bool = True) -> AddonError:
    """The AddonError for an HTTP error answer (pure: tested directly)."""
    reason, kind, message = _status_reason(body or b"")
    detail = message or reason or ""
    if status == 404 and (not proxied or kind == "services" or (reason == "NotFound" and "services" in (message or ""))):
        what = "not_found"
    elif status == 404:
        what = "http_error"  # the add-on itself answered 404: a wrong path or an old version
    elif status in (401, 403):
        what = "forbidden"
    elif status == 503:
        what = "unavailable"
    else:
        what = "http_error"
    msg = "%s: %s answered HTTP %s%s" % (addon, target, status, (": %s" % detail) if detail else "")
    return AddonError(msg, addon=addon, kind=what, status=status, target=target)


class ServiceProxy(object):
    """GET through the API server's service proxy with a kubernetes ``ApiClient``.

    ``headers`` is a callable returning the Authorization header (``_k8s.Kube.auth_headers``),
    so exec-plugin tokens are refreshed the way the other modules do it.
    """

    proxied = True
    THROTTLED_RETRIES = 10

    def __init__(self, api_client, addon: str, namespace: str, service: str, port: str, scheme: str = "http",
                 headers=None, timeout: float = 30):
        self.api_client = api_client
        self.addon = addon
        self.namespace = namespace
        self.service = service
        self.port = str(port)
        self.headers = headers
        self.timeout = timeout
        name = "%s%s:%s" % ("https:" if scheme == "https" else "", service, self.port)
        self.base = "/api/v1/namespaces/%s/services/%s/proxy" % (quote(namespace, safe=""), quote(name, safe=":"))
        self.target = "service proxy %s/%s:%s" % (namespace, service, self.port)

    def get(self, path: str, query=None) -> bytes:
        header_params = {"Accept": "application/json"}
        if self.headers is not None:
            header_params.update(self.headers())
        attempt = 0
        while True:
            try:
                resp = self.api_client.call_api(
                    self.base + path, "GET", query_params=list(query or []), header_params=header_params,
                    auth_settings=[], _preload_content=False, _return_http_data_only=True, _request_timeout=self.timeout,
                )
                return resp.data
            except Exception as exc:  # ApiException (HTTP status) or urllib3 errors (no answer)
                # 429: the API server (API Priority and Fairness) did not process the request; try again
                # after its Retry-After, as client-go does, a bounded number of times
                if getattr(exc, "status", None) == 429 and attempt < self.THROTTLED_RETRIES:
                    attempt += 1
                    time.sleep(min(_k8s._retry_after(exc) or 0.5 * attempt, 10.0))  # pylint: disable=protected-access
                    continue
                self._fail(exc)

    def _fail(self, exc):
        """Raise the AddonError that names what went wrong (an HTTP status, or no answer)."""
        status = getattr(exc, "status", None)
        if status:
            body = getattr(exc, "body", None) or b""
            if not isinstance(body, bytes):
                body = str(body).encode("utf-8")
            raise classify_http_failure(self.addon, self.target, status, body, proxied=True)
        raise AddonError("%s: cannot reach the Kubernetes API for %s: %s" % (self.addon, self.target, exc),
                         addon=self.addon, kind="unreachable", target=self.target)


class DirectURL(object):
    """GET on an explicit add-on URL (``open_url``: proxies, TLS verification, timeouts)."""

    proxied = False

    def __init__(self, addon: str, url: str, validate_certs: bool = True, bearer_token=None, timeout: float = 30):
        self.addon = addon
        self.url = url.rstrip("/")
        self.validate_certs = validate_certs
        self.bearer_token = bearer_token
        self.timeout = timeout
        self.target = self.url

    def get(self, path: str, query=None) -> bytes:
        url = self.url + path
        if query:
            url += "?" + urlencode(list(query))
        headers = {"Accept": "application/json"}
        if self.bearer_token:
            headers["Authorization"] = "Bearer %s" % self.bearer_token
        try:
            resp = open_url(url, headers=headers, validate_certs=self.validate_certs, timeout=self.timeout,
                            follow_redirects="safe")
            return resp.read()
        except Exception as exc:  # HTTPError (has .code), URLError, socket errors, TLS errors
            code = getattr(exc, "code", None)
            if isinstance(code, int):
                try:
                    body = exc.read()
                except Exception:  # the error body is optional
                    body = b""
                raise classify_http_failure(self.addon, self.target, code, body, proxied=False)
            raise AddonError("%s: cannot reach %s: %s" % (self.addon, self.target, getattr(exc, "reason", exc)),
                             addon=self.addon, kind="unreachable", target=self.target)


class Prefixed(object):
    """A transport whose paths all start with a prefix (Jaeger's /jaeger, Kiali's /kiali)."""

    def __init__(self, transport, prefix: str):
        self.transport = transport
        self.prefix = "/" + prefix.strip("/") if prefix and prefix.strip("/") else ""
        self.addon = transport.addon
        self.target = transport.target
        self.proxied = transport.proxied
        self.namespace = getattr(transport, "namespace", None)
        self.service = getattr(transport, "service", None)

    def get(self, path: str, query=None) -> bytes:
        return self.transport.get(self.prefix + path, query)


def endpoint(addon: str, options: dict, default_namespace: str, api_client=None, headers=None, timeout: float = 30):
    """A transport for ``addon`` from its option dict (explicit ``url`` wins over the service proxy)."""
    options = options or {}
    defaults = ADDON_DEFAULTS[addon]
    prefix = options.get("path_prefix")
    if prefix is None:
        prefix = defaults["prefix"]
    if options.get("url"):
        transport = DirectURL(addon, options["url"], validate_certs=options.get("validate_certs", True),
                              bearer_token=options.get("bearer_token"), timeout=timeout)
    elif api_client is None:
        raise AddonError("%s: no url given and no Kubernetes connection for the service proxy" % addon, addon=addon, kind="unreachable")
    else:
        transport = ServiceProxy(api_client, addon, options.get("namespace") or default_namespace,
                                 options.get("service") or defaults["service"], options.get("port") or defaults["port"],
                                 scheme=options.get("scheme") or "http", headers=headers, timeout=timeout)
    return Prefixed(transport, prefix)


def get_json(transport, path: str, query=None):
    """GET and decode JSON; a non-JSON answer is AddonError(kind=bad_answer)."""
    body = transport.get(path, query)
    try:
        return json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (ValueError, UnicodeDecodeError):
        snippet = (body[:120].decode("utf-8", "replace") if isinstance(body, bytes) else str(body)[:120]).strip()
        raise AddonError("%s: %s%s answered something that is not JSON: %r" % (transport.addon, transport.target, path, snippet),
                         addon=transport.addon, kind="bad_answer", target=transport.target)


class Prometheus(object):
    """The few Prometheus HTTP API calls the modules need; counts the queries it sends."""

    def __init__(self, transport, evaluation_time=None):
        self.transport = transport
        self.evaluation_time = evaluation_time
        self.queries = []

    def query(self, promql: str) -> list:
        """Instant query -> [(labels, value)]; Prometheus errors are AddonError(kind=query_error)."""
        params = [("query", promql)]
        if self.evaluation_time is not None:
            params.append(("time", str(self.evaluation_time)))
        self.queries.append(promql)
        try:
            data = get_json(self.transport, "/api/v1/query", params)
        except AddonError as err:
            if err.details.get("status") in (400, 422) and err.details.get("kind") == "http_error":
                err.details["kind"] = "query_error"  # Prometheus answers a bad query with 400 and its error JSON
                err.details["query"] = promql
            raise
        try:
            return _promql.vector(data)
        except ValueError as exc:
            raise AddonError("prometheus: query failed: %s" % exc, addon="prometheus", kind="query_error",
                             target=self.transport.target, query=promql)

    def targets(self) -> list:
        """The active scrape targets (``/api/v1/targets?state=active``)."""
        data = get_json(self.transport, "/api/v1/targets", [("state", "active")])
        if not isinstance(data, dict) or data.get("status") != "success":
            raise AddonError("prometheus: /api/v1/targets failed: %s" % (data.get("error") if isinstance(data, dict) else data),
                             addon="prometheus", kind="query_error", target=self.transport.target)
        return list((data.get("data") or {}).get("activeTargets") or [])
