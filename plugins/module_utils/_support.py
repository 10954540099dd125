# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's shared data, in one place: what Istio supports, the OKE choices, the
collection-wide defaults, and which API errors are worth retrying.

The roles read it through the ``okemesh.istio.support`` and ``okemesh.istio.api_transient``
filters (plugins/filter/okemesh.py), so it travels with the collection and works when a role is
used alone. This is a private module_utils file: it may change at any time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# Istio minor -> the Kubernetes minors it supports (istio.io "Supported Releases",
# data/compatibility/supportStatus.yml of istio/istio.io). Newest first.
ISTIO_KUBERNETES = {
    "1.30": {"min": "1.32", "max": "1.36"},
    "1.29": {"min": "1.31", "max": "1.35"},
    "1.28": {"min": "1.30", "max": "1.34"},
    "1.27": {"min": "1.29", "max": "1.33"},
}

# Istio release the roles install when nothing else is set (okemesh_istio_version).
DEFAULT_ISTIO_VERSION = "1.30.0"

# Endpoint of an OKE cluster a kubeconfig can target (CreateClusterKubeconfigContentDetails.endpoint).
OKE_ENDPOINTS = ["PUBLIC_ENDPOINT", "PRIVATE_ENDPOINT", "VCN_HOSTNAME", "LEGACY_KUBERNETES"]
# How the OCI SDK authenticates.
OCI_AUTH_TYPES = ["api_key", "instance_principal", "resource_principal", "security_token"]
# User written into an OKE kubeconfig: the exec plugin (oci ce cluster generate-token) or a minted token.
OKE_CREDENTIALS = ["exec", "token"]

# Retries of a Kubernetes API call that failed transiently (okemesh_api_retries), and the
# seconds between two tries (okemesh_api_retry_delay).
DEFAULT_API_RETRIES = 10
DEFAULT_API_RETRY_DELAY = 2
# Rounds in which a Helm release is deployed again after transient API errors used up a round's
# tries (okemesh_helm_retries; each round tries okemesh_api_retries + 1 times): one helm install or
# upgrade is dozens of API requests, and helm (client-go) does not retry a 5xx answer without
# Retry-After, so a release needs more tries than one API call.
DEFAULT_HELM_RETRIES = 30

SUPPORT = {
    "istio_kubernetes": ISTIO_KUBERNETES,
    "default_istio_version": DEFAULT_ISTIO_VERSION,
    "oke_endpoints": OKE_ENDPOINTS,
    "oci_auth_types": OCI_AUTH_TYPES,
    "oke_credentials": OKE_CREDENTIALS,
    "default_api_retries": DEFAULT_API_RETRIES,
    "default_api_retry_delay": DEFAULT_API_RETRY_DELAY,
    "default_helm_retries": DEFAULT_HELM_RETRIES,
}

_MINOR = re.compile(r"^v?(\d+)\.(\d+)")


def minor(version):
    """'v1.30.2' -> '1.30'; '' when the text is not a version."""
    m = _MINOR.match(str(version or "").strip())
    return "%s.%s" % (m.group(1), m.group(2)) if m else ""


def kubernetes_range(istio_version):
    """The Kubernetes range an Istio version supports, {'min', 'max'}; {} when not recorded."""
    return dict(ISTIO_KUBERNETES.get(minor(istio_version), {}))


# HTTP status codes that a retry can cure: the API server is throttling (429, API Priority and
# Fairness) or is briefly unavailable (control-plane upgrade, etcd leader change, a proxy in front).
TRANSIENT_STATUS = (429, 500, 502, 503, 504)

# How a transient failure reads in the results of kubernetes.core (Python client), helm and
# kubectl (client-go). A request the server refused for a reason of its own (400 Bad Request,
# 403, 404, 409 Conflict, 422 Invalid) matches none of them.
_TRANSIENT_TEXT = re.compile(
    "|".join(
        [
            r"\b(?:Too Many Requests|Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout)\b",
            r"\((?:TooManyRequests|InternalError|ServiceUnavailable|Timeout)\)",  # kubectl: Error from server (X)
            r"the server has received too many requests",
            r"the server is currently unable to handle the request",
            r"the server was unable to return a response in the time allotted",
            r"an error on the server .* has prevented the request from succeeding",
            r"Internal error occurred",
            r"etcdserver: (?:request timed out|leader changed|too many requests)",
            r"[Cc]onnection (?:refused|reset|aborted)",
            r"RemoteDisconnected|Max retries exceeded|ProtocolError|IncompleteRead|Read timed out|ConnectTimeoutError",
            r"TLS handshake timeout|i/o timeout|http2: client connection lost|unexpected EOF|: EOF\b",
            r"Kubernetes cluster unreachable",
        ]
    )
)


_STATUS_CODE = re.compile(r'"code"\s*:\s*(\d{3})\b|\((\d{3})\)\s*Reason:')


def _exception_texts(result):
    """The traceback a module that raised instead of failing cleanly left: ``exception``, or
    ``failed_when_suppressed_exception`` when the task's ``failed_when`` turned the failure off
    (ansible-core 2.19 moves it there; below -vvv it is only a placeholder, see below)."""
    return [result[key] for key in ("exception", "failed_when_suppressed_exception") if isinstance(result.get(key), str)]


# What ansible-core 2.19 keeps of a module's exception when verbosity is below -vvv
_NO_TRACEBACK = "(traceback unavailable)"


def is_transient(result):
    """True when a registered task result carries an API error that a retry can cure.

    The HTTP status decides when the result says it: ``status``/``error`` when they are numbers,
    else the ``code`` of a Status body quoted in ``msg`` (kubernetes.core). Without a status, the
    error text (``msg``, ``reason``, ``stderr``: helm and kubectl) is matched against the ways
    client-go and the Python client report throttling, 5xx answers and broken connections. A
    result without an error, or with an error a retry cannot cure (422 Invalid, 404, 403, ...),
    is False: the task then ends (or fails) at once.
    """
    if not isinstance(result, dict):
        return False
    for key in ("status", "error"):
        code = result.get(key)
        if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
            return code in TRANSIENT_STATUS
    text = "\n".join([str(result.get(key) or "") for key in ("msg", "reason", "stderr")] + _exception_texts(result))
    m = _STATUS_CODE.search(text)
    if m:
        return int(m.group(1) or m.group(2)) in TRANSIENT_STATUS
    if _TRANSIENT_TEXT.search(text):
        return True
    # kubernetes.core's waiters let the Python client's exception for a 5xx met while waiting escape
    # (they catch urllib3's errors only), so the module fails with an exception, not a message. A
    # task whose failed_when turned that off keeps no message of it in ansible-core 2.19 below -vvv:
    # only "(traceback unavailable)". Nothing says the error was permanent, and the tasks that turn
    # failures off read state and report it after their bounded retries: such a result is retried.
    suppressed = result.get("failed_when_suppressed_exception")
    return isinstance(suppressed, str) and suppressed.strip() == _NO_TRACEBACK and not str(result.get("msg") or "").strip()


# helm refuses to act on a release whose last revision is pending-install, pending-upgrade or
# pending-rollback: another helm operation is running, or one was interrupted. An uninstall that
# was interrupted before it deleted the release record leaves it "uninstalling", which helm
# upgrade --install refuses as having no deployed releases.
_HELM_BUSY = re.compile(r"another operation \(install/upgrade/rollback\) is in progress|\" has no deployed releases")


def is_helm_busy(result):
    """True when a registered helm result failed because the release has an operation pending (or
    an interrupted one: pending-*, uninstalling)."""
    if not isinstance(result, dict):
        return False
    text = "\n".join(str(result.get(key) or "") for key in ("msg", "stderr"))
    return bool(_HELM_BUSY.search(text))


def failed_definitions(result, definitions):
    """The definitions whose apply failed in a kubernetes.core.k8s result with continue_on_error.

    kubernetes.core.k8s returns one result per definition, in order (``result.results``), or the
    single result itself for one definition; a failed one carries ``error``. Returns the matching
    definitions, in order; [] for a skipped or failed task (no per-definition results).
    """
    if not isinstance(result, dict) or not isinstance(definitions, list):
        return []
    if "error" in result and len(definitions) == 1:
        return list(definitions)
    results = (result.get("result") or {}).get("results") if isinstance(result.get("result"), dict) else None
    if not isinstance(results, list) or len(results) != len(definitions):
        return []
    return [d for d, r in zip(definitions, results) if isinstance(r, dict) and "error" in r]
