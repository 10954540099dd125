# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes connection options, a client factory and LIST/WATCH helpers.

The option names mirror kubernetes.core (``kubeconfig``, ``context``, ``host``, ``api_key``,
``validate_certs``, ``ca_cert``, ``client_cert``, ``client_key``) and so do the environment
variables that supply defaults (``K8S_AUTH_KUBECONFIG``, ``K8S_AUTH_CONTEXT``, ... and
``KUBECONFIG``).  The kubernetes Python client is imported lazily, only when a client is
built, so that importing this file is cheap and works without the library.

Big LISTs are read with ``_preload_content=False`` and ``json.loads``: the raw JSON is several
times faster to decode than the client's model deserialisation.

This is a private module_utils file: it may change at any time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
from contextlib import suppress
import threading
import time
import traceback

try:
    from importlib.util import find_spec
except ImportError:  # pragma: no cover - Python 2 is not supported by this collection
    find_spec = None

try:
    import queue
except ImportError:  # pragma: no cover
    import Queue as queue  # noqa: N813

from ansible_collections.okemesh.istio.plugins.module_utils._errors import KubernetesError, InputError

# Shared argument spec: keep in step with plugins/doc_fragments/k8s_auth.py.
K8S_AUTH_ARGSPEC = dict(
    kubeconfig=dict(type="raw", no_log=True),
    context=dict(type="str"),
    host=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", aliases=["verify_ssl"]),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"]),
    client_cert=dict(type="path", aliases=["cert_file"]),
    client_key=dict(type="path", aliases=["key_file"], no_log=False),
)

# option -> environment variable (the names kubernetes.core reads)
K8S_AUTH_ENV = dict(
    kubeconfig="K8S_AUTH_KUBECONFIG",
    context="K8S_AUTH_CONTEXT",
    host="K8S_AUTH_HOST",
    api_key="K8S_AUTH_API_KEY",
    validate_certs="K8S_AUTH_VERIFY_SSL",
    ca_cert="K8S_AUTH_SSL_CA_CERT",
    client_cert="K8S_AUTH_CERT_FILE",
    client_key="K8S_AUTH_KEY_FILE",
)

HAS_K8S = find_spec is not None and find_spec("kubernetes") is not None
_IMPORTED = {}


def import_kubernetes():
    """Import the kubernetes client on first use.

    Returns (client, config) modules; raises KubernetesError (with the traceback) when the
    library is missing or broken.
    """
    if "client" not in _IMPORTED:
        try:
            from kubernetes import client, config  # pylint: disable=import-outside-toplevel
        except ImportError as exc:
            raise KubernetesError(
                "the kubernetes Python library is required (pip install kubernetes): %s" % exc,
                exception=traceback.format_exc(),
            )
        _IMPORTED["client"] = client
        _IMPORTED["config"] = config
    return _IMPORTED["client"], _IMPORTED["config"]


def kubernetes_import_error():
    """None when the kubernetes library imports, else the traceback text (for missing_required_lib)."""
    if not HAS_K8S:
        return "No module named 'kubernetes'"
    try:
        import_kubernetes()
    except KubernetesError as err:
        return err.details.get("exception") or err.msg
    return None


def _bool(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on", "y")


def auth_params(params, environ=None):
    """The connection options with kubernetes.core's environment defaults applied."""
    environ = os.environ if environ is None else environ
    resolved = {}
    for option, env_name in K8S_AUTH_ENV.items():
        value = params.get(option)
        if value is None and environ.get(env_name) not in (None, ""):
            value = environ[env_name]
            if option == "validate_certs":
                value = _bool(value)
        resolved[option] = value
    if resolved["kubeconfig"] is None and environ.get("KUBECONFIG"):
        resolved["kubeconfig"] = environ["KUBECONFIG"]
    return resolved


def _kubeconfig_paths(value):
    return [os.path.expanduser(p) for p in str(value).split(os.pathsep) if p]


def build_configuration(params, environ=None):
    """A configured ``kubernetes.client.Configuration`` (kubeconfig, then explicit overrides)."""
    client, config = import_kubernetes()
    opts = auth_params(params, environ)
    cfg = client.Configuration()
    kubeconfig = opts["kubeconfig"]
    try:
        if isinstance(kubeconfig, dict):
            config.load_kube_config_from_dict(kubeconfig, context=opts["context"], client_configuration=cfg, persist_config=False)
        elif kubeconfig:
            paths = _kubeconfig_paths(kubeconfig)
            missing = [p for p in paths if not os.path.exists(p)]
            if missing and len(missing) == len(paths):
                raise InputError("kubeconfig %s does not exist" % ", ".join(missing))
            config.load_kube_config(config_file=os.pathsep.join(p for p in paths if p not in missing),
                                    context=opts["context"], client_configuration=cfg, persist_config=False)
        elif not opts["host"]:
            default = os.path.expanduser("~/.kube/config")
            if os.path.exists(default):
                config.load_kube_config(config_file=default, context=opts["context"], client_configuration=cfg, persist_config=False)
            else:
                config.load_incluster_config(client_configuration=cfg)
    except InputError:
        raise
    except Exception as exc:  # the config loaders raise ConfigException, ValueError, OSError, yaml errors
        raise KubernetesError(
            "could not load the Kubernetes client configuration (kubeconfig %s, context %s): %s"
            % (kubeconfig if isinstance(kubeconfig, str) else ("<dict>" if kubeconfig else "<default>"), opts["context"] or "<current>", exc)
        )
    if opts["host"]:
        cfg.host = opts["host"]
    if opts["api_key"]:
        token = "Bearer %s" % opts["api_key"]
        cfg.api_key = {"authorization": token, "BearerToken": token}
        cfg.api_key_prefix = {}
        cfg.refresh_api_key_hook = None
    if opts["validate_certs"] is not None:
        cfg.verify_ssl = bool(opts["validate_certs"])
    if opts["ca_cert"]:
        cfg.ssl_ca_cert = opts["ca_cert"]
    if opts["client_cert"]:
        cfg.cert_file = opts["client_cert"]
    if opts["client_key"]:
        cfg.key_file = opts["client_key"]
    if not cfg.host:
        raise InputError("no Kubernetes API host: give kubeconfig (or KUBECONFIG) or host")
    return cfg


def get_api_client(params, environ=None):
    """A ``kubernetes.client.ApiClient`` from the connection options (see K8S_AUTH_ARGSPEC)."""
    client, _config = import_kubernetes()
    return client.ApiClient(build_configuration(params, environ))


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------
def to_kubernetes_error(exc, action):
    """Convert a client/urllib3 exception into KubernetesError(status, reason, message)."""
    if isinstance(exc, KubernetesError):
        return exc
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    body = getattr(exc, "body", None)
    message = None
    if body:
        try:
            parsed = json.loads(body)
            message = parsed.get("message")
            reason = parsed.get("reason") or reason
        except (ValueError, TypeError, AttributeError):
            message = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    if status:
        text = "%s: HTTP %s %s%s" % (action, status, reason or "", (": %s" % message) if message else "")
        return KubernetesError(text.strip(), status=status, reason=reason, api_message=message)
    return KubernetesError("%s: cannot reach the Kubernetes API: %s" % (action, exc), reason=type(exc).__name__)


RETRY_STATUSES = (429, 500, 502, 503, 504)


def _retry_delay(exc, attempt):
    """Seconds before retry ``attempt`` (1-based): the server's Retry-After (at most 5), else 0.2, 0.4, 0.8."""
    headers = getattr(exc, "headers", None) or {}
    try:
        return min(5.0, max(0.0, float(headers.get("Retry-After"))))
    except (TypeError, ValueError):
        return 0.2 * (2 ** (attempt - 1))


class Kube(object):
    """A thin JSON client over ``ApiClient.call_api`` (auth, TLS, token refresh come from it)."""

    def __init__(self, api_client, request_timeout=30, retries=3):
        self.api_client = api_client
        self.request_timeout = request_timeout
        self.retries = retries

    def auth_headers(self):
        """The Authorization header, built here rather than by ``auth_settings``.

        kubernetes 36.0.0 looks the token up under ``api_key['BearerToken']`` while its own
        kubeconfig and in-cluster loaders store it under ``api_key['authorization']``, so the
        client's ``auth_settings=['BearerToken']`` sends no token at all (kubernetes-client/python
        issues 2582/2584).  Both keys are read here, after the refresh hook (exec plugins such as
        ``oci ce cluster generate-token`` renew the token through it).
        """
        cfg = self.api_client.configuration
        if cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)
        for ident in ("BearerToken", "authorization"):
            key = (cfg.api_key or {}).get(ident)
            if key:
                prefix = (cfg.api_key_prefix or {}).get(ident)
                return {"Authorization": "%s %s" % (prefix, key) if prefix else key}
        if cfg.username or cfg.password:
            return {"Authorization": cfg.get_basic_auth_token()}
        return {}

    def _call(self, path, query=None, timeout=None, stream=False):
        headers = {"Accept": "application/json"}
        headers.update(self.auth_headers())
        return self.api_client.call_api(
            path,
            "GET",
            query_params=list(query or []),
            header_params=headers,
            auth_settings=[],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=timeout if timeout is not None else self.request_timeout,
        )

    def get_json(self, path, query=None):
        """GET and decode; 429 and 5xx answers are retried ``self.retries`` times (Retry-After honoured, capped)."""
        attempt = 0
        while True:
            try:
                resp = self._call(path, query)
                data = resp.data
                break
            except Exception as exc:  # ApiException, urllib3 errors
                err = to_kubernetes_error(exc, "GET %s" % path)
                status = err.details.get("status")
                if attempt >= self.retries or status not in RETRY_STATUSES:
                    raise err
                attempt += 1
                time.sleep(_retry_delay(exc, attempt))
        try:
            return json.loads(data)
        except ValueError as exc:
            raise KubernetesError("GET %s: the API answered with something that is not JSON: %s" % (path, exc))

    def list(self, path, label_selector=None, field_selector=None, limit=None):
        """LIST a collection (following ``continue``); returns (items, resourceVersion)."""
        items = []
        cont = None
        while True:
            query = []
            if label_selector:
                query.append(("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if limit:
                query.append(("limit", int(limit)))
            if cont:
                query.append(("continue", cont))
            body = self.get_json(path, query)
            items.extend(body.get("items") or [])
            meta = body.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                return items, meta.get("resourceVersion")

    def watch(self, path, resource_version, timeout_seconds, label_selector=None, field_selector=None, on_open=None):
        """WATCH a collection from ``resource_version``; yields decoded events as they arrive.

        ``on_open(response)`` receives the streaming response so another thread can close it.
        ERROR events (e.g. 410 Gone) are yielded like any other event.
        """
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", max(1, int(timeout_seconds)))]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        try:
            resp = self._call(path, query, timeout=(10, max(1, int(timeout_seconds)) + 10))
        except Exception as exc:
            raise to_kubernetes_error(exc, "WATCH %s" % path)
        if on_open is not None:
            on_open(resp)
        buf = b""
        try:
            for chunk in _chunks(resp):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
            if buf.strip():
                yield json.loads(buf)
        finally:
            with suppress(Exception):  # best effort: the stream may already be closed
                resp.release_conn()


def _chunks(resp):
    if getattr(resp, "chunked", False) and getattr(resp, "supports_chunked_reads", lambda: False)():
        yield from resp.read_chunked(decode_content=True)
        return
    while True:
        data = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not data:
            return
        yield data


# --------------------------------------------------------------------------------------
# list + watch cache
# --------------------------------------------------------------------------------------
class Resource(object):
    """One collection kept in memory: path (+ selectors); items keyed by namespace/name."""

    def __init__(self, key, path, label_selector=None, field_selector=None, optional=False, fallback=None):
        self.key = key
        self.path = path
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.optional = optional  # a 404 (API not served) gives an empty collection
        self.fallback = fallback  # another Resource to use when this one is not served
        self.items = {}
        self.resource_version = None
        self.served = True
        self.lists = 0


def resource_from_spec(spec):
    """A Resource from a dict (key, path, label_selector, field_selector, optional, fallback dict)."""
    spec = dict(spec)
    fallback = spec.pop("fallback", None)
    if fallback is not None:
        spec["fallback"] = resource_from_spec(fallback)
    return Resource(**spec)


def _obj_key(obj):
    meta = obj.get("metadata") or {}
    return "%s/%s" % (meta.get("namespace") or "", meta.get("name"))


class Cache(object):
    """LIST once, then WATCH from the LIST's resourceVersion; events are applied on demand.

    Watch threads only put events on a queue; the caller's thread applies them in
    ``wait_for_changes`` (so the dicts are never mutated behind its back).  A 410 Gone makes
    the watcher re-LIST and hand over the fresh collection.
    """

    def __init__(self, kube, resources, page_size=None):
        self.kube = kube
        self.resources = [r if isinstance(r, Resource) else resource_from_spec(r) for r in resources]
        self.page_size = page_size
        self.events = queue.Queue()
        self.stop = threading.Event()
        self.threads = []
        self.responses = []
        self._lock = threading.Lock()
        self.relists = 0
        self.watch_restarts = 0
        self.events_seen = 0

    # ---- listing ----------------------------------------------------------------------
    def _list(self, res):
        items, rv = self.kube.list(res.path, res.label_selector, res.field_selector, self.page_size)
        res.lists += 1
        return dict((_obj_key(o), o) for o in items), rv

    def _list_one(self, index):
        res = self.resources[index]
        try:
            res.items, res.resource_version = self._list(res)
        except KubernetesError as err:
            if err.details.get("status") == 404 and res.fallback is not None:
                self.resources[index] = res = res.fallback
                res.items, res.resource_version = self._list(res)
            elif err.details.get("status") == 404 and res.optional:
                res.served = False
                res.items, res.resource_version = {}, None
            else:
                raise

    def list_all(self, parallel=4):
        """LIST every resource; up to ``parallel`` requests at a time (the small LISTs then
        ride along while the API server is still producing the big pod LIST)."""
        indexes = list(range(len(self.resources)))
        if parallel <= 1 or len(indexes) <= 1:
            for index in indexes:
                self._list_one(index)
            return
        errors = []

        def worker(mine):
            for index in mine:
                try:
                    self._list_one(index)
                except Exception as exc:  # re-raised in the caller's thread
                    errors.append((index, exc))
                    return

        threads = []
        for n in range(min(parallel, len(indexes))):
            thread = threading.Thread(target=worker, args=(indexes[n::parallel],), name="list-%d" % n)
            thread.daemon = True
            threads.append(thread)
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise sorted(errors, key=lambda e: e[0])[0][1]

    def get(self, key):
        out = []
        for res in self.resources:
            if res.key == key:
                out.extend(res.items.values())
        return out

    # ---- watching ---------------------------------------------------------------------
    def start_watches(self, keys, deadline):
        """Start one watch thread per resource whose key is in ``keys`` (idempotent)."""
        watching = set(id(t.resource) for t in self.threads)
        for res in self.resources:
            if res.key in keys and res.served and id(res) not in watching:
                thread = threading.Thread(target=self._watch_loop, args=(res, deadline), name="watch-%s" % res.key)
                thread.daemon = True
                thread.resource = res
                self.threads.append(thread)
                thread.start()

    def _register(self, resp):
        with self._lock:
            self.responses.append(resp)
        if self.stop.is_set():
            self._shutdown(resp)

    def _watch_loop(self, res, deadline):
        rv = res.resource_version
        backoff = 0.05
        while not self.stop.is_set():
            remaining = deadline - time.time()
            if remaining <= 0:
                return
            try:
                gone = False
                for event in self.kube.watch(res.path, rv, remaining + 1, res.label_selector, res.field_selector, self._register):
                    if self.stop.is_set():
                        return
                    etype = event.get("type")
                    obj = event.get("object") or {}
                    if etype == "ERROR":
                        if obj.get("code") == 410:
                            gone = True
                            break
                        raise KubernetesError("WATCH %s: %s" % (res.path, obj.get("message")), status=obj.get("code"))
                    new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if new_rv:
                        rv = new_rv
                    if etype != "BOOKMARK":
                        self.events.put((res, etype, obj))
                    backoff = 0.05
                if gone:
                    raise KubernetesError("gone", status=410)
                self.watch_restarts += 1  # the server closed the stream: watch again from rv
            except KubernetesError as err:
                if self.stop.is_set():
                    return
                if err.details.get("status") == 410:
                    try:
                        items, rv = self._list(res)
                    except KubernetesError:
                        self.stop.wait(backoff)
                        backoff = min(backoff * 2, 2.0)
                        continue
                    self.relists += 1
                    self.events.put((res, "RELIST", items))
                    continue
                self.watch_restarts += 1
                self.stop.wait(backoff)  # interruptible back-off on errors, not a polling sleep
                backoff = min(backoff * 2, 2.0)
            except Exception:  # a cut stream (urllib3 ProtocolError, socket errors, bad JSON)
                if self.stop.is_set():
                    return
                self.watch_restarts += 1
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def _apply(self, item):
        res, etype, obj = item
        self.events_seen += 1
        if etype == "RELIST":
            res.items = obj
            return
        key = _obj_key(obj)
        if etype == "DELETED":
            res.items.pop(key, None)
        else:
            res.items[key] = obj

    def wait_for_changes(self, deadline):
        """Block until at least one event arrives (or the deadline); apply it and every queued one.

        Returns the number of events applied (0 = deadline reached).
        """
        remaining = deadline - time.time()
        if remaining <= 0:
            return 0
        try:
            item = self.events.get(timeout=remaining)
        except queue.Empty:
            return 0
        self._apply(item)
        applied = 1
        while True:
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                return applied
            self._apply(item)
            applied += 1

    @staticmethod
    def _shutdown(resp):
        for name in ("shutdown", "close"):
            method = getattr(resp, name, None)
            if method is not None:
                with suppress(Exception):  # best effort: the reader thread may be closing it too
                    method()

    def close(self):
        """Stop the watch threads (they are daemons: the process may also just exit)."""
        self.stop.set()
        with self._lock:
            responses = list(self.responses)
        for resp in responses:
            self._shutdown(resp)
        for thread in self.threads:
            thread.join(timeout=1.0)
