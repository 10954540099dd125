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

Retries and time limits (for every module that talks to the API, as client-go does):

* ``Deadline(seconds, what)`` is the time a whole task may take (its ``wait``/``wait_timeout``).
  Every request's connect and read timeouts are cut to what it has left, and no retry starts
  that would end past it, so a task never outlives its limit because timeouts and retries nest.
* ``call_with_retry(send, action=..., deadline=..., idempotent=..., stats=...)`` runs one
  request: 429 is always retried (the server did not process it); 5xx answers, connection
  resets and read timeouts only when the request is idempotent (GET, LIST, server-side apply);
  ``Retry-After`` is honoured (capped), otherwise exponential back-off.  urllib3's own retries
  are switched off in ``build_configuration`` so that the two never multiply.
* ``Kube.request(method, path, ...)`` is that for JSON requests (service-proxy GETs too);
  ``Kube.get_json`` and ``Kube.list`` use it.  ``Kube.stats.count`` is the number of retries,
  for a module's result (``api_retries``).

The ``kubeconfig`` option is not ``no_log`` (a path is not a secret, and masking a whole
dictionary garbles every equal string in the output); ``K8sModule`` (or
``protect_kubeconfig(module)``) registers the secrets inside an inline kubeconfig instead.

This is a private module_utils file: it may change at any time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
from contextlib import suppress
from email.utils import parsedate_to_datetime
import threading
import time
import traceback

from urllib.parse import urlparse

from ansible.module_utils.basic import AnsibleModule

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
# ``kubeconfig`` is not no_log as a whole: see kubeconfig_secret_values() and K8sModule.
K8S_AUTH_ARGSPEC = dict(
    kubeconfig=dict(type="raw", no_log=False),
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


# --------------------------------------------------------------------------------------
# secrets inside an inline kubeconfig
# --------------------------------------------------------------------------------------
# user fields that hold a credential (client-key, tokenFile and the like are paths: not secret)
_USER_SECRETS = ("token", "password", "client-key-data")
# ("auth" alone is not one: ``--auth security_token`` and OCI_CLI_AUTH name a method, not a secret)
_SECRET_NAME = re.compile(r"(?i)(token|secret|passw|pwd|credential|key|cookie|session|private)")
_SECRET_FLAG = re.compile(r"(?i)^--?[a-z0-9-]*(token|secret|passw|pwd|credential|key)[a-z0-9-]*$")
_LONG_OPAQUE = 16  # an exec env value this long is masked whatever its name


def _strings(value):
    if isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _list(value):
    return value if isinstance(value, list) else []


def kubeconfig_secret_values(kubeconfig):
    """The credentials inside an inline kubeconfig (a dict), to register as no_log values.

    Tokens, passwords and client keys of every user; every value of an auth-provider's config
    whose key names a credential; exec env values whose name names one (or that are long and
    opaque); exec args that follow (or carry) a credential flag such as ``--token``; the
    password in a proxy-url.  A path (a str kubeconfig) holds no secret: returns an empty set.
    """
    found = set()
    if not isinstance(kubeconfig, dict):
        return found
    for entry in _list(kubeconfig.get("users")):
        user = (entry or {}).get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        for key in _USER_SECRETS:
            found.update(_strings(user.get(key)))
        provider = user.get("auth-provider") or {}
        if isinstance(provider, dict):
            config = provider.get("config")
            for key, value in (config.items() if isinstance(config, dict) else ()):
                if _SECRET_NAME.search(str(key)):
                    found.update(_strings(value))
        exec_ = user.get("exec") or {}
        if isinstance(exec_, dict):
            for env in _list(exec_.get("env")):
                if isinstance(env, dict) and isinstance(env.get("value"), str):
                    if _SECRET_NAME.search(str(env.get("name"))) or len(env["value"]) >= _LONG_OPAQUE:
                        found.update(_strings(env["value"]))
            args = [a for a in _list(exec_.get("args")) if isinstance(a, str)]
            for i, arg in enumerate(args):
                flag, eq, value = arg.partition("=")
                if eq and _SECRET_FLAG.match(flag):
                    found.update(_strings(value))
                elif _SECRET_FLAG.match(arg) and i + 1 < len(args):
                    found.update(_strings(args[i + 1]))
    for entry in _list(kubeconfig.get("clusters")):
        cluster = (entry or {}).get("cluster") if isinstance(entry, dict) else None
        proxy = cluster.get("proxy-url") if isinstance(cluster, dict) else None
        if isinstance(proxy, str):
            with suppress(ValueError):
                found.update(_strings(urlparse(proxy).password))
    return found


def protect_kubeconfig(module):
    """Register the secrets of the module's connection options as no_log values.

    The credentials inside an inline ``kubeconfig`` dict and an ``api_key`` that comes from
    K8S_AUTH_API_KEY are then masked in everything the module returns, and nothing else is.
    """
    params = module.params or {}
    module.no_log_values.update(kubeconfig_secret_values(params.get("kubeconfig")))
    env_key = os.environ.get(K8S_AUTH_ENV["api_key"])
    if not params.get("api_key") and env_key:
        module.no_log_values.add(env_key)


class K8sModule(AnsibleModule):
    """AnsibleModule that masks the secrets inside an inline kubeconfig from the start.

    They are registered as soon as the parameters are read, so even an argument-spec failure
    (whose result echoes the parameters) or the parameter log masks them; every exit registers
    them again.
    """

    def _load_params(self):
        super()._load_params()
        protect_kubeconfig(self)

    def exit_json(self, **kwargs):
        protect_kubeconfig(self)
        super().exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        protect_kubeconfig(self)
        super().fail_json(msg, **kwargs)


# --------------------------------------------------------------------------------------
# client factory
# --------------------------------------------------------------------------------------
def validate_auth_params(opts):
    """Check the connection options' shapes before anything is loaded; raises InputError."""
    kubeconfig = opts.get("kubeconfig")
    if kubeconfig is not None and not isinstance(kubeconfig, (str, dict)):
        raise InputError("kubeconfig must be a path (several paths joined with ':') or a kubeconfig as a dictionary, "
                         "got a %s" % type(kubeconfig).__name__)
    if isinstance(kubeconfig, dict) and not kubeconfig:
        raise InputError("kubeconfig is an empty dictionary: give a kubeconfig's content, a path, or omit it")
    host = opts.get("host")
    if host:
        parsed = urlparse(host) if isinstance(host, str) else None
        try:
            port_ok = parsed is not None and (parsed.port is None or 0 < parsed.port < 65536)
        except ValueError:
            port_ok = False
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname or not port_ok:
            raise InputError("host must be the API server's URL, such as https://api.example.com:6443, got %r" % (host,))
    for option in ("ca_cert", "client_cert", "client_key"):
        path = opts.get(option)
        if path and not os.path.isfile(os.path.expanduser(path)):
            raise InputError("%s %s does not exist or is not a file" % (option, path))


def _config_error(exc):
    """The config loader's error without file content: a YAML error says where, not what."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return "%s at line %d, column %d" % (getattr(exc, "problem", None) or "not valid YAML", mark.line + 1, mark.column + 1)
    return str(exc)


def _kubeconfig_paths(value):
    return [os.path.expanduser(p) for p in str(value).split(os.pathsep) if p]


def build_configuration(params, environ=None):
    """A configured ``kubernetes.client.Configuration`` (kubeconfig, then explicit overrides)."""
    opts = auth_params(params, environ)
    validate_auth_params(opts)
    client, config = import_kubernetes()
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
            % (kubeconfig if isinstance(kubeconfig, str) else ("<dict>" if kubeconfig else "<default>"), opts["context"] or "<current>",
               _config_error(exc))
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
    cfg.retries = _no_urllib3_retries()
    return cfg


def _no_urllib3_retries():
    """urllib3 retries off (they would multiply with call_with_retry's); redirects still followed."""
    from urllib3.util.retry import Retry  # pylint: disable=import-outside-toplevel

    try:
        return Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5, raise_on_status=False)
    except TypeError:  # urllib3 < 1.26 has no ``other``
        return Retry(total=None, connect=0, read=0, status=0, redirect=5, raise_on_status=False)


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
            if len(message) > 300:  # a proxy's HTML page, not a Status: its start is enough
                message = message[:300] + "..."
    if status:
        text = "%s: HTTP %s %s%s" % (action, status, reason or "", (": %s" % message) if message else "")
        return KubernetesError(text.strip(), status=status, reason=reason, api_message=message)
    return KubernetesError("%s: cannot reach the Kubernetes API: %s" % (action, exc), reason=type(exc).__name__)


# --------------------------------------------------------------------------------------
# deadlines and retries, as client-go does them
# --------------------------------------------------------------------------------------
RETRY_STATUSES = (429, 500, 502, 503, 504)


class Deadline(object):
    """The time a whole task may take, from now: ``Deadline(2, "wait=2")``.

    ``what`` names the option that set it, for error messages.  ``remaining()`` is in seconds;
    ``wall_clock()`` is the same instant in ``time.time()`` terms (for Cache's watch deadline).
    """

    def __init__(self, seconds, what="the task's time limit"):
        self.seconds = float(seconds)
        self.what = what
        self.at = time.monotonic() + self.seconds

    def remaining(self):
        return max(0.0, self.at - time.monotonic())

    def wall_clock(self):
        return time.time() + self.remaining()


class RetryPolicy(object):
    """How often and how long to retry (defaults as client-go: at most 10 retries).

    ``backoff`` doubles per retry up to ``backoff_cap`` when the server gives no Retry-After;
    a Retry-After is honoured up to ``retry_after_cap``.  ``request_timeout`` and
    ``connect_timeout`` bound one attempt (and are cut to what the deadline leaves).
    """

    def __init__(self, retries=10, backoff=0.2, backoff_cap=2.0, retry_after_cap=10.0, request_timeout=30.0,
                 connect_timeout=10.0):
        self.retries = retries
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.retry_after_cap = retry_after_cap
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout

    def delay(self, attempt, retry_after=None):
        """Seconds before retry ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(self.retry_after_cap, retry_after)
        return min(self.backoff_cap, self.backoff * (2 ** (attempt - 1)))


class RetryStats(object):
    """Retries counted across threads: ``count`` and ``reasons`` ({"429": 3, "reset": 1, ...})."""

    def __init__(self):
        self._lock = threading.Lock()
        self.count = 0
        self.reasons = {}

    def add(self, reason):
        with self._lock:
            self.count += 1
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


def _retry_after(exc):
    """The Retry-After of an HTTP error in seconds (delta-seconds or an HTTP date), else None."""
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("Retry-After")
    except AttributeError:
        return None
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _root_cause(exc):
    """urllib3 wraps the socket error: MaxRetryError.reason, ProtocolError('...', cause)."""
    seen = 0
    while seen < 5:
        reason = getattr(exc, "reason", None)
        if isinstance(reason, BaseException):
            exc = reason
            seen += 1
            continue
        break
    return exc


def failure_kind(exc):
    """What went wrong: ``status`` (an HTTP answer), ``reset`` (the connection broke),
    ``timeout`` (no answer in time), ``connect`` (refused or unreachable) or ``other``."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status > 0:
        return "status"
    try:
        from urllib3 import exceptions as u3  # pylint: disable=import-outside-toplevel
    except ImportError:  # pragma: no cover - the kubernetes client needs urllib3
        return "other"
    import http.client  # pylint: disable=import-outside-toplevel

    cause = _root_cause(exc)
    for candidate in (exc, cause):
        if isinstance(candidate, (u3.NewConnectionError, u3.ConnectTimeoutError, ConnectionRefusedError)):
            return "connect"
    for candidate in (exc, cause):
        if isinstance(candidate, (u3.ReadTimeoutError, TimeoutError)) or type(candidate).__name__ == "timeout":
            return "timeout"
    for candidate in (exc, cause):
        if isinstance(candidate, (u3.ProtocolError, ConnectionError, http.client.HTTPException)):
            return "reset"
    return "other"


def _timeouts(policy, deadline):
    """(connect, read) seconds for one attempt, cut to the deadline; None when no time is left."""
    connect, read = float(policy.connect_timeout), float(policy.request_timeout)
    if deadline is not None:
        left = deadline.remaining()
        if left <= 0.001:
            return None
        connect, read = min(connect, left), min(read, left)
    return (connect, read)


def call_with_retry(send, action, deadline=None, idempotent=True, policy=None, stats=None, sleep=time.sleep):
    """Run ``send(timeout)`` and retry it where client-go would; returns what it returns.

    ``send`` makes one attempt with ``timeout`` = (connect, read) seconds (pass it as the
    kubernetes client's ``_request_timeout``) and reads the whole answer, so that a connection
    reset while reading is retried too; it raises on a non-2xx answer (the client's
    ApiException does).  Retried: 429 always (the API server did not process the request);
    500/502/503/504, connection resets and read timeouts when ``idempotent`` (reads, server-side
    apply); never a refused connection or another status.  The delay is the answer's
    Retry-After (capped), else exponential back-off; no retry starts that the ``deadline``
    (a Deadline) would cut.  Each retry is counted in ``stats`` (a RetryStats).

    Raises KubernetesError with ``status``, ``reason``, ``api_message`` and ``retries`` (this
    call's) in its details.  Another module's GET through the service proxy::

        body = call_with_retry(lambda t: kube.raw_get(path, t), "GET " + path, deadline=deadline, stats=kube.stats)

    (``Kube.request`` does exactly this for JSON requests.)
    """
    policy = policy or RetryPolicy()
    attempt = 0
    while True:
        timeout = _timeouts(policy, deadline)
        if timeout is None:
            raise KubernetesError("%s: not sent, no time is left of %s%s" % (action, deadline.what, _retried(attempt)),
                                  reason="DeadlineExceeded", retries=attempt)
        try:
            return send(timeout)
        except KubernetesError:
            raise
        except Exception as exc:  # ApiException, urllib3 and socket errors
            kind = failure_kind(exc)
            status = getattr(exc, "status", None) if kind == "status" else None
            retryable = status == 429 or (idempotent and (status in RETRY_STATUSES or kind in ("reset", "timeout")))
            retry_after = _retry_after(exc) if kind == "status" else None
            delay = policy.delay(attempt + 1, retry_after)
            cut = deadline is not None and delay >= deadline.remaining()
            if not retryable or attempt >= policy.retries or cut:
                raise _final_error(exc, kind, action, timeout, deadline, attempt, retryable and cut)
            attempt += 1
            if stats is not None:
                stats.add(str(status) if status else kind)
            sleep(delay)


def _retried(attempts):
    return "" if not attempts else " (after %d %s)" % (attempts, "retry" if attempts == 1 else "retries")


def _final_error(exc, kind, action, timeout, deadline, attempts, cut):
    suffix = _retried(attempts)
    if kind == "timeout":
        bound = ""
        if deadline is not None and deadline.remaining() <= 0.05:
            bound = " (the time left of %s)" % deadline.what
        return KubernetesError("%s: no answer from the Kubernetes API within %.1f s%s%s" % (action, timeout[1], bound, suffix),
                               reason="Timeout", retries=attempts)
    if cut:
        suffix += "; no time is left of %s for another try" % deadline.what
    err = to_kubernetes_error(exc, action)
    err.msg = err.msg + suffix
    err.args = (err.msg,)
    err.details["retries"] = attempts
    return err


class Kube(object):
    """A thin JSON client over ``ApiClient.call_api`` (auth, TLS, token refresh come from it).

    ``deadline`` (a Deadline, settable later) bounds every request and retry; ``stats``
    counts the retries.  ``retries`` is the most retries of one request.
    """

    def __init__(self, api_client, request_timeout=30, retries=10, deadline=None, policy=None):
        self.api_client = api_client
        self.request_timeout = request_timeout
        self.retries = retries
        self.deadline = deadline
        self.policy = policy or RetryPolicy(retries=retries, request_timeout=request_timeout)
        self.stats = RetryStats()

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

    def _call(self, path, query=None, timeout=None, stream=False, method="GET", body=None, content_type=None,
              accept="application/json"):
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        headers.update(self.auth_headers())
        if timeout is None:
            timeout = (float(self.policy.connect_timeout), float(self.request_timeout))
        return self.api_client.call_api(
            path,
            method,
            query_params=list(query or []),
            header_params=headers,
            body=body,
            auth_settings=[],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=timeout,
        )

    def request(self, method, path, query=None, body=None, content_type=None, idempotent=None, accept="application/json",
                decode=True, deadline=None):
        """One API request with client-go's retries, bounded by ``deadline`` (default ``self.deadline``).

        ``idempotent`` defaults to True for GET/HEAD and server-side apply (PATCH with
        ``application/apply-patch+yaml``): only those are retried on 5xx, resets and timeouts;
        429 is retried for every method.  Returns the decoded JSON (None for an empty body),
        or the raw bytes with ``decode=False`` (a service-proxy GET of a non-JSON page).
        Raises KubernetesError (details: status, reason, api_message, retries).
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in ("GET", "HEAD") or (method == "PATCH" and content_type == "application/apply-patch+yaml")
        action = "%s %s" % (method, path)

        def send(timeout):
            resp = self._call(path, query, timeout=timeout, method=method, body=body, content_type=content_type, accept=accept)
            try:
                return resp.data  # the whole body here: a reset while reading is retried as well
            finally:
                with suppress(Exception):
                    resp.release_conn()

        data = call_with_retry(send, action, deadline=deadline or self.deadline, idempotent=idempotent, policy=self.policy,
                               stats=self.stats)
        if not decode:
            return data
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise KubernetesError("%s: the API answered with something that is not JSON: %s" % (action, exc))

    def get_json(self, path, query=None):
        """GET and decode, retried as ``request`` does."""
        body = self.request("GET", path, query)
        if not isinstance(body, dict):
            raise KubernetesError("GET %s: the API answered with JSON that is not an object" % path)
        return body

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
        connect = float(self.policy.connect_timeout)
        if self.deadline is not None:
            connect = max(0.1, min(connect, self.deadline.remaining()))
        try:
            resp = self._call(path, query, timeout=(connect, max(1, int(timeout_seconds)) + 10))
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

    @property
    def api_retries(self):
        """Retries of API requests so far (429, 5xx, resets; see call_with_retry)."""
        stats = getattr(self.kube, "stats", None)
        return stats.count if stats is not None else 0

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
        deadline = getattr(self.kube, "deadline", None)
        for thread in threads:
            # every request is bounded by the deadline; the margin covers a last read in flight
            thread.join(None if deadline is None else deadline.remaining() + 5.0)
        if errors:
            raise sorted(errors, key=lambda e: e[0])[0][1]
        late = [res.path for res in self.resources if res.resource_version is None and res.served and not res.items]
        if any(thread.is_alive() for thread in threads):
            raise KubernetesError("LIST %s: no answer within %s" % (", ".join(late) or "?", deadline.what),
                                  reason="DeadlineExceeded")

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
        until = time.monotonic() + 1.0  # one second for all of them, not one each
        for thread in self.threads:
            thread.join(timeout=max(0.0, until - time.monotonic()))
