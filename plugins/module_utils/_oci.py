# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI authentication (config file, signers), OKE kubeconfig download and token minting.

This is a private module_utils file: it may change at any time.
The OCI Python SDK is imported lazily (it is heavy); callers check ``HAS_OCI`` first.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import importlib.util
import ipaddress
import math
import os
import re

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported
    from urlparse import urlsplit

from ansible.module_utils.basic import env_fallback
from ansible_collections.okemesh.istio.plugins.module_utils import _kubeconfig as kc
from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError, OCIError

HAS_OCI = importlib.util.find_spec("oci") is not None

AUTH_TYPES = ["api_key", "instance_principal", "resource_principal", "security_token"]
ENDPOINTS = ["PUBLIC_ENDPOINT", "PRIVATE_ENDPOINT", "VCN_HOSTNAME", "LEGACY_KUBERNETES"]
CREDENTIALS = ["exec", "token"]
DEFAULT_CONFIG_FILE = os.path.join("~", ".oci", "config")
DEFAULT_PROFILE = "DEFAULT"
TOKEN_LIFETIME = datetime.timedelta(minutes=4)  # what `oci ce cluster generate-token` announces

# ocid1.<resource type>.<realm>.[region][.future use].<unique id>; matched whole (fullmatch), ASCII only
_OCID = re.compile(r"ocid1\.(?P<type>[a-z0-9]+)\.(?P<realm>[a-z0-9]+)\.(?P<region>[a-z0-9-]*)(\.[a-z0-9-]*)?\.(?P<unique>[a-z0-9]{6,})", re.ASCII)
_FINGERPRINT = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){15}", re.ASCII)
_REGION = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", re.ASCII)
_LOOPBACK_HOSTS = ("localhost", "::1")
TIMEOUT_MAX = 300.0  # seconds per request
RETRIES_MAX = 10
RETRY_WAIT_MAX = 8  # seconds between attempts (the OCI SDK's exponential backoff, capped)
NAME_MAX = 253  # context names: a practical bound (a DNS subdomain's length)
SECURITY_TOKEN_MAX_BYTES = 64 * 1024

# option specs shared with the doc fragment okemesh.istio.oci_auth (keep both in step);
# the environment fallbacks are the variables oracle.oci users already export
OCI_AUTH_ARG_SPEC = dict(
    auth_type=dict(type="str", default="api_key", choices=AUTH_TYPES, fallback=(env_fallback, ["OCI_ANSIBLE_AUTH_TYPE"])),
    config_file_location=dict(type="path", fallback=(env_fallback, ["OCI_CONFIG_FILE"])),
    config_profile_name=dict(type="str", fallback=(env_fallback, ["OCI_CONFIG_PROFILE"])),
    region=dict(type="str", fallback=(env_fallback, ["OCI_REGION"])),
    tenancy=dict(type="str", fallback=(env_fallback, ["OCI_TENANCY"])),
    api_user=dict(type="str", fallback=(env_fallback, ["OCI_USER_ID"])),
    api_user_fingerprint=dict(type="str", no_log=True, fallback=(env_fallback, ["OCI_USER_FINGERPRINT"])),
    api_user_key_file=dict(type="path", fallback=(env_fallback, ["OCI_USER_KEY_FILE"])),
    api_user_key_pass_phrase=dict(type="str", no_log=True, fallback=(env_fallback, ["OCI_USER_KEY_PASS_PHRASE"])),
    service_endpoint=dict(type="str"),
    timeout=dict(type="float", default=30.0),
    retries=dict(type="int", default=3),
)


def _ocid_problem(value, kind):
    """Why ``value`` is not an OCID of ``kind`` (None when it is one). Never quotes the value."""
    if not isinstance(value, str) or not value:
        return "it is empty"
    for pos, char in enumerate(value):
        if char.isspace() or ord(char) < 32 or ord(char) == 127:
            return "it contains whitespace or a control character at position %d (a trailing newline or space counts)" % (pos + 1)
        if ord(char) > 127:
            return "it contains a non-ASCII character at position %d" % (pos + 1)
    if not value.startswith("ocid1."):
        return "it does not start with ocid1."
    match = _OCID.fullmatch(value)
    if not match:
        return "expected ocid1.%s.<realm>.<region>.<unique id> in lower case letters, digits and dashes" % kind
    if match.group("type") != kind:
        return "it is the OCID of a %s, not of a %s" % (match.group("type"), kind)
    return None


def parse_ocid(value, kind, option):
    """Check that ``value`` is an OCID of ``kind`` (e.g. 'cluster'); return its parts. No network.

    The whole string must match (a trailing newline fails); the error says what is wrong
    without echoing the value.
    """
    problem = _ocid_problem(value, kind)
    if problem:
        raise InputError("%s is not a well-formed OCID of a %s: %s" % (option, kind, problem), option=option)
    return _OCID.fullmatch(value).groupdict()


def region_from_ocid(ocid):
    """The region named in an OCID as a full identifier, or None (short keys are expanded)."""
    match = _OCID.fullmatch(ocid or "") if isinstance(ocid, str) else None
    if not match or not match.group("region"):
        return None
    region = match.group("region")
    if "-" in region:
        return region
    try:
        import oci.regions

        return oci.regions.REGIONS_SHORT_NAMES.get(region)
    except ImportError:  # pragma: no cover
        return None


def check_service_endpoint(value):
    """``service_endpoint`` must be an https URL (http only to a loopback address), without
    credentials, query or fragment. Raises InputError without echoing the value."""
    hint = "such as https://containerengine.us-ashburn-1.oraclecloud.com (http:// is accepted only for a loopback address)"
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value):
        raise InputError("service_endpoint must be a URL without spaces or control characters, %s" % hint, option="service_endpoint")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        valid = parts.port != 0  # .port raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        valid = False
    if not valid:
        raise InputError("service_endpoint is not a valid URL (bad host or port); it must be a URL %s" % hint, option="service_endpoint")
    if parts.scheme not in ("https", "http") or not host:
        raise InputError("service_endpoint must be a URL with scheme and host, %s" % hint, option="service_endpoint")
    if parts.username is not None or parts.password is not None:
        raise InputError("service_endpoint must not carry credentials (user:password@); OCI requests are signed", option="service_endpoint")
    if parts.query or parts.fragment:
        raise InputError("service_endpoint must not have a query or fragment, %s" % hint, option="service_endpoint")
    if parts.scheme == "http" and not _is_loopback(host):
        raise InputError(
            "service_endpoint uses http:// to a host that is not a loopback address: signed OCI requests would travel in clear text; use https://",
            option="service_endpoint",
        )


def _is_loopback(host):
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bad_text(value):
    return any(ord(char) < 32 or ord(char) == 127 for char in value)


def validate_params(params):
    """Range and form checks of every option, before any file is read or any call is made.

    Messages name the option and what is wrong, never the value.
    """
    for name, value in sorted(params.items()):
        if isinstance(value, str) and "\x00" in value:
            raise InputError("%s must not contain a NUL character" % name, option=name)
    parse_ocid(params.get("cluster_id"), "cluster", "cluster_id")
    for name, kind in (("tenancy", "tenancy"), ("api_user", "user")):
        if params.get(name) not in (None, ""):
            parse_ocid(params[name], kind, name)
    fingerprint = params.get("api_user_fingerprint")
    if fingerprint not in (None, "") and not _FINGERPRINT.fullmatch(fingerprint):
        raise InputError(
            "api_user_fingerprint is not a key fingerprint (16 pairs of hex digits separated by colons, as the OCI console shows it)",
            option="api_user_fingerprint",
        )
    region = params.get("region")
    if region not in (None, "") and (len(region) > 64 or not _REGION.fullmatch(region)):
        raise InputError("region must be an OCI region identifier such as us-ashburn-1 (lower case letters, digits and dashes)", option="region")
    if params.get("service_endpoint") not in (None, ""):
        check_service_endpoint(params["service_endpoint"])
    timeout = params.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or math.isnan(timeout) or not 0 < timeout <= TIMEOUT_MAX):
        raise InputError("timeout must be a number of seconds greater than 0 and at most %d" % TIMEOUT_MAX, option="timeout")
    retries = params.get("retries")
    if retries is not None and not 0 <= retries <= RETRIES_MAX:
        raise InputError("retries must be between 0 and %d" % RETRIES_MAX, option="retries")
    context = params.get("context")
    if context is not None:
        if context == "" or context != context.strip() or _bad_text(context) or len(context) > NAME_MAX:
            raise InputError(
                "context must be a non-empty name of at most %d characters, without control characters or leading/trailing spaces "
                "(omit it for OKE's names)" % NAME_MAX,
                option="context",
            )
    for name in ("config_profile_name", "config_file_location", "api_user_key_file", "dest"):
        value = params.get(name)
        if isinstance(value, str) and _bad_text(value):
            raise InputError("%s must not contain control characters (a newline, a tab)" % name, option=name)
    if params.get("dest") is not None and params["dest"] == "":
        raise InputError("dest must be the path of a kubeconfig file", option="dest")


def _param(params, name):
    value = params.get(name)
    return None if value in (None, "") else value


class Auth(object):
    """What was used to authenticate: config, signer and a redacted description for messages."""

    def __init__(self, auth_type, config, signer, profile=None, config_file=None, explicit_config_file=False):
        self.auth_type = auth_type
        self.config = config
        self.signer = signer
        self.profile = profile
        self.config_file = config_file
        self.explicit_config_file = explicit_config_file

    def describe(self):
        if self.auth_type in ("api_key", "security_token"):
            where = "profile %s of %s" % (self.profile, self.config_file) if self.config_file else "module options"
            text = "auth_type=%s (%s" % (self.auth_type, where)
            if self.auth_type == "api_key":
                text += ", user %s, tenancy %s" % (self.config.get("user"), self.config.get("tenancy"))
            return text + ")"
        return "auth_type=%s" % self.auth_type

    def exec_args(self):
        """Arguments the kubeconfig's `oci ce cluster generate-token` needs for this auth."""
        args = []
        if self.auth_type != "api_key":
            args += ["--auth", self.auth_type]
        if self.auth_type in ("api_key", "security_token") and self.config_file:
            if self.explicit_config_file and os.path.expanduser(self.config_file) != os.path.expanduser(DEFAULT_CONFIG_FILE):
                args += ["--config-file", self.config_file]
            if self.profile and self.profile != DEFAULT_PROFILE:
                args += ["--profile", self.profile]
        return args


def _load_config_file(location, profile, explicit):
    import oci

    path = os.path.expanduser(location)
    if not os.path.isfile(path):
        if os.path.lexists(path):
            raise InputError("OCI config file %s is not a regular file (config_file_location)" % location, option="config_file_location")
        if explicit:
            raise InputError("OCI config file %s does not exist (config_file_location)" % location, option="config_file_location")
        return None
    if not os.access(path, os.R_OK):
        raise InputError("OCI config file %s is not readable by this user" % location, option="config_file_location")
    try:
        return oci.config.from_file(file_location=path, profile_name=profile)
    except oci.exceptions.ProfileNotFound:
        raise InputError("Profile %s not found in OCI config file %s (config_profile_name)" % (profile, location), option="config_profile_name")
    except oci.exceptions.InvalidKeyFilePath:
        raise InputError(
            "Private key file named by key_file in profile %s of %s does not exist (key_file must be the path of a PEM file)" % (profile, location),
            option="config_file_location",
        )
    except ValueError as exc:  # key_content in a file, unparsable lines
        raise InputError("OCI config file %s, profile %s, is invalid: %s" % (location, profile, exc.__class__.__name__))
    except Exception as exc:  # configparser errors name only the file and line
        raise InputError("OCI config file %s cannot be parsed (%s)" % (location, exc.__class__.__name__))


def _load_private_key(key_file, pass_phrase, what):
    import oci

    path = os.path.expanduser(key_file or "")
    if not key_file:
        raise InputError("No private key for %s: set key_file in the profile or api_user_key_file" % what, option="api_user_key_file")
    if not os.path.isfile(path):
        if os.path.lexists(path):
            raise InputError("Private key file %s for %s is not a regular file" % (key_file, what), option="api_user_key_file")
        raise InputError("Private key file %s for %s does not exist" % (key_file, what), option="api_user_key_file")
    if not os.access(path, os.R_OK):
        raise InputError("Private key file %s for %s is not readable by this user" % (key_file, what), option="api_user_key_file")
    try:
        return oci.signer.load_private_key_from_file(path, pass_phrase)
    except oci.exceptions.MissingPrivateKeyPassphrase:
        raise InputError(
            "Private key file %s for %s is encrypted: set api_user_key_pass_phrase (or pass_phrase in the profile)" % (key_file, what),
            option="api_user_key_pass_phrase",
        )
    except oci.exceptions.InvalidPrivateKey:
        raise InputError(
            "Private key file %s for %s could not be loaded: it is not a PEM private key or the passphrase is wrong" % (key_file, what),
            option="api_user_key_file",
        )
    except (OSError, ValueError, TypeError) as exc:
        raise InputError("Private key file %s for %s could not be read (%s)" % (key_file, what, exc.__class__.__name__), option="api_user_key_file")


def build_auth(params):
    """Config dict + signer for ``params`` (the oci_auth options). Raises InputError/OCIError."""
    import oci

    auth_type = params.get("auth_type") or "api_key"
    explicit_file = _param(params, "config_file_location")
    location = explicit_file or DEFAULT_CONFIG_FILE
    profile = _param(params, "config_profile_name") or DEFAULT_PROFILE

    if auth_type == "api_key":
        config = _load_config_file(location, profile, explicit=bool(explicit_file)) or {}
        from_file = bool(config)
        overrides = dict(
            tenancy=_param(params, "tenancy"),
            user=_param(params, "api_user"),
            fingerprint=_param(params, "api_user_fingerprint"),
            key_file=_param(params, "api_user_key_file"),
            pass_phrase=_param(params, "api_user_key_pass_phrase"),
            region=_param(params, "region"),
        )
        config.update(dict((k, v) for k, v in overrides.items() if v))
        missing = [k for k in ("tenancy", "user", "fingerprint", "key_file") if not config.get(k)]
        if missing:
            raise InputError(
                "auth_type=api_key needs %s: no OCI config file at %s (profile %s) provides them and the matching options "
                "(tenancy, api_user, api_user_fingerprint, api_user_key_file) are not set" % (", ".join(missing), location, profile)
            )
        parse_ocid(config["user"], "user", "api_user (user in the profile)")
        parse_ocid(config["tenancy"], "tenancy", "tenancy (tenancy in the profile)")
        what = "user %s" % config["user"]
        _load_private_key(config["key_file"], config.get("pass_phrase"), what)  # clear errors before the SDK's
        signer = oci.signer.Signer(config["tenancy"], config["user"], config["fingerprint"], os.path.expanduser(config["key_file"]), config.get("pass_phrase"))
        return Auth(auth_type, config, signer, profile if from_file else None, location if from_file else None, bool(explicit_file))

    if auth_type == "security_token":
        config = _load_config_file(location, profile, explicit=True)
        token_file = config.get("security_token_file")
        if not token_file:
            raise InputError("auth_type=security_token: profile %s of %s has no security_token_file (run `oci session authenticate`)" % (profile, location))
        state = kc.read_state(
            os.path.expanduser(token_file), what="security_token_file", max_bytes=SECURITY_TOKEN_MAX_BYTES, option="security_token_file",
            hint="run `oci session authenticate` again",
        )
        if not state.exists:
            raise InputError(
                "auth_type=security_token: security_token_file %s of profile %s does not exist (run `oci session authenticate`)" % (token_file, profile)
            )
        token = state.text.strip()
        key_file = _param(params, "api_user_key_file") or config.get("key_file")
        pass_phrase = _param(params, "api_user_key_pass_phrase") or config.get("pass_phrase")
        key = _load_private_key(key_file, pass_phrase, "the session of profile %s" % profile)
        if _param(params, "region"):
            config["region"] = _param(params, "region")
        signer = oci.auth.signers.SecurityTokenSigner(token, key)
        return Auth(auth_type, config, signer, profile, location, bool(explicit_file))

    config = {}
    if _param(params, "region"):
        config["region"] = _param(params, "region")
    try:
        if auth_type == "instance_principal":
            signer = oci.auth.signers.InstancePrincipalsSecurityTokenSigner()
        else:
            signer = oci.auth.signers.get_resource_principals_signer()
    except Exception as exc:
        raise OCIError(
            "auth_type=%s could not obtain credentials (%s): %s" % (
                auth_type,
                exc.__class__.__name__,
                "is this running on an OCI compute instance whose dynamic group a policy allows?"
                if auth_type == "instance_principal"
                else "are the OCI_RESOURCE_PRINCIPAL_* variables of a function/job set?",
            )
        )
    if not config.get("region") and getattr(signer, "region", None):
        config["region"] = signer.region
    return Auth(auth_type, config, signer)


def resolve_region(params, auth, cluster_id):
    region = _param(params, "region") or auth.config.get("region") or region_from_ocid(cluster_id)
    if not region:
        raise InputError("No OCI region: set region (or region in the OCI config profile)", option="region")
    return region


def total_wait(timeout, retries):
    """Upper bound, in whole seconds, of one kubeconfig request with its retries."""
    return int(math.ceil(timeout * (retries + 1) + RETRY_WAIT_MAX * retries))


def container_engine_client(auth, region, service_endpoint=None, timeout=30.0, retries=3):
    import oci

    config = dict(auth.config, region=region)
    if retries > 0:
        retry_strategy = oci.retry.RetryStrategyBuilder(
            max_attempts=retries + 1,
            total_elapsed_time_seconds=total_wait(timeout, retries),
            retry_max_wait_between_calls_seconds=RETRY_WAIT_MAX,
        ).get_retry_strategy()
    else:
        retry_strategy = oci.retry.NoneRetryStrategy()
    kwargs = dict(signer=auth.signer, timeout=(min(10.0, timeout), timeout), retry_strategy=retry_strategy)
    if service_endpoint:
        kwargs["service_endpoint"] = service_endpoint
    try:
        return oci.container_engine.ContainerEngineClient(config, **kwargs)
    except (ValueError, oci.exceptions.ClientError) as exc:
        raise InputError("Cannot build the Container Engine client for region %s: %s" % (region, exc.__class__.__name__))


def fetch_kubeconfig(client, cluster_id, endpoint, auth, region):
    """The kubeconfig YAML text OKE returns for ``cluster_id`` and ``endpoint``."""
    import oci
    from oci._vendor.requests import exceptions as req_exc

    details = oci.container_engine.models.CreateClusterKubeconfigContentDetails(token_version="2.0.0", endpoint=endpoint)
    url = client.base_client.endpoint
    try:
        response = client.create_kubeconfig(cluster_id, create_cluster_kubeconfig_content_details=details)
        body = response.data.content
    except oci.exceptions.ServiceError as exc:
        raise service_error(exc, cluster_id=cluster_id, endpoint=endpoint, auth=auth, region=region, url=url)
    except (req_exc.RequestException, oci.exceptions.RequestException, oci.exceptions.ConnectTimeout) as exc:
        raise OCIError(
            "Could not reach the OCI Container Engine endpoint %s (%s) for region %s; check region/service_endpoint, "
            "proxy settings and network access" % (url, exc.__class__.__name__, region),
            endpoint_url=url,
        )
    try:
        return body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise OCIError("OCI returned a kubeconfig for %s that is not UTF-8 text" % cluster_id)


def service_error(exc, cluster_id, endpoint, auth, region, url):
    details = dict(status=exc.status, code=exc.code, opc_request_id=exc.request_id, endpoint_url=url)
    who = auth.describe()
    if exc.status == 401:
        hint = (
            "check that the fingerprint, user and tenancy match the API key uploaded for the user and that key_file is its private key"
            if auth.auth_type == "api_key"
            else "refresh the session (oci session refresh)" if auth.auth_type == "security_token" else "check the principal's credentials"
        )
        msg = "OCI rejected the credentials (401 %s) for %s in region %s: %s" % (exc.code, who, region, hint)
    elif exc.status == 404:
        named = region_from_ocid(cluster_id)
        where = ""
        if named and named != region:
            where = " The cluster OCID names region %s but the request went to %s: set region." % (named, region)
        msg = (
            "Cluster %s was not found in region %s or %s may not use it (404 %s). Check the cluster OCID, the region, and that an "
            "IAM policy allows the user's group to use clusters in the cluster's compartment.%s" % (cluster_id, region, who, exc.code, where)
        )
    elif exc.status == 400:
        msg = "OCI refused the kubeconfig request for %s with endpoint %s (400 %s): %s" % (cluster_id, endpoint, exc.code, exc.message)
    else:
        msg = "OCI Container Engine answered %s %s for cluster %s in region %s: %s" % (exc.status, exc.code, cluster_id, region, exc.message)
    return OCIError(msg, **details)


def token_url(region, cluster_id):
    return "https://containerengine.%s.oraclecloud.com/cluster_request/%s" % (region, cluster_id)


def mint_token(signer, region, cluster_id, now=None):
    """A bearer token for the cluster, made like `oci ce cluster generate-token` makes it.

    Sign ``GET /cluster_request/<cluster_id>`` on the regional Container Engine host, move the
    ``authorization`` and ``date`` headers into the query string, base64url-encode the URL.
    Returns (token, expiration datetime in UTC).
    """
    from oci._vendor.requests import Request

    try:
        from urllib.parse import urlencode
    except ImportError:  # pragma: no cover - Python 2 is not supported
        from urllib import urlencode

    url = token_url(region, cluster_id)
    signed = signer.do_request_sign(Request("GET", url).prepare())
    params = [("authorization", signed.headers["authorization"]), ("date", signed.headers["date"])]
    delegation = getattr(signer, "delegation_token", None)
    if delegation:
        params.append(("opc-obo-token", delegation))
    full = url + "?" + urlencode(params)
    token = base64.urlsafe_b64encode(full.encode("utf-8")).decode("ascii")
    start = now or datetime.datetime.now(datetime.timezone.utc)
    return token, start + TOKEN_LIFETIME


def _read_existing(dest, merge):
    """(FileState, round-trip document or None) of the file at ``dest``; see the module's rules."""
    state = kc.read_state(dest, need_text=merge)
    if not state.exists or not state.readable:
        return state, None
    if merge:
        return state, kc.parse(state.text, source="existing kubeconfig %s" % dest, keep_layout=True)
    try:
        return state, kc.parse(state.text, source=dest)
    except InputError:
        return state, None  # replaced anyway


def ensure_oke_kubeconfig(params, check_mode=False, want_diff=False):
    """The service behind okemesh.istio.oke_kubeconfig. Returns the module result dict."""
    validate_params(params)
    cluster_id = params["cluster_id"]
    dest = os.path.expanduser(params.get("dest") or os.path.join("~", ".kube", "config"))
    merge = params.get("merge", True)
    set_current = params.get("set_current_context", True)
    credential = params.get("credential") or "exec"
    warnings = []

    state, existing_doc = _read_existing(dest, merge)
    if state.exists and state.nlink > 1:
        warnings.append("kubeconfig %s has %d hard links; a write replaces this name only, the other links keep the old content" % (dest, state.nlink))

    auth = build_auth(params)
    region = resolve_region(params, auth, cluster_id)
    named = region_from_ocid(cluster_id)
    if named and named != region:
        warnings.append("cluster_id names region %s but region is %s" % (named, region))
    timeout = params.get("timeout") or 30.0
    retries = params.get("retries")
    client = container_engine_client(
        auth, region, service_endpoint=params.get("service_endpoint"), timeout=timeout, retries=3 if retries is None else retries
    )
    text = fetch_kubeconfig(client, cluster_id, params["endpoint"], auth, region)
    oke_doc = kc.parse(text, source="the kubeconfig OCI returned", hint="OKE answers a kubeconfig: check that service_endpoint is a Container Engine endpoint")

    token = expires = None
    if credential == "token":
        token, expires = mint_token(auth.signer, region, cluster_id)
    elif auth.auth_type == "api_key" and not auth.config_file:
        warnings.append(
            "the kubeconfig runs `oci ce cluster generate-token`, which needs an OCI config file profile; this run used module "
            "options instead, so kubectl will use the default profile"
        )
    exec_args = auth.exec_args() if params.get("exec_auth_args", True) else []
    new_doc = kc.shape_oke(oke_doc, cluster_id, context=params.get("context"), exec_args=exec_args, token=token)
    cluster_name, user_name, context_name = kc.names(new_doc)

    existing_plain = kc.to_plain(existing_doc) if existing_doc is not None else None
    if merge:
        want = kc.merge(existing_doc, new_doc, set_current_context=set_current, in_place=True)
    else:
        want = kc.replace(new_doc, set_current_context=set_current)

    want_mode = state.want_mode()
    content_changed = not state.exists or existing_plain is None or not kc.same(existing_plain, want)
    mode_changed = state.exists and state.mode != want_mode
    changed = content_changed or mode_changed
    if changed and not check_mode:
        if content_changed:
            warnings.extend(kc.atomic_write(state, kc.render(want), mode=want_mode))
        else:
            kc.set_mode(state, want_mode)

    result = dict(
        changed=changed,
        dest=dest,
        cluster_id=cluster_id,
        region=region,
        endpoint=params["endpoint"],
        server=kc.mask_url(new_doc["clusters"][0]["cluster"]["server"]),
        cluster_name=cluster_name,
        user_name=user_name,
        context=context_name,
        current_context=want.get("current-context") or "",
        credential=credential,
        auth_type=auth.auth_type,
        exec_args=exec_args if credential == "exec" else [],
    )
    if expires is not None:
        result["token_expiration"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    if warnings:
        result["warnings"] = warnings
    if want_diff:
        result["diff"] = _diff(state, existing_plain, want, user_name, dest, want_mode, mode_changed)
    return result


def _diff(state, existing_doc, want, user_name, dest, want_mode, mode_changed):
    """Before/after with every credential masked (comments are not shown: they may hold anything)."""
    own_user = next((u for u in want.get("users") or [] if u.get("name") == user_name), {})
    own_args = ((own_user.get("user") or {}).get("exec") or {}).get("args") or []
    masked_before, masked_after = kc.mask_pair(existing_doc, want, own_user=user_name, own_args=own_args)
    if not state.exists:
        before = ""
    elif not state.readable:
        before = "# (not read: larger than %d bytes)\n" % kc.MAX_FILE_BYTES
    elif existing_doc is None:
        before = "# (not a valid kubeconfig)\n"
    else:
        before = kc.render_plain(masked_before)
    before_header = dest if state.exists else "%s (absent)" % dest
    if mode_changed:
        before_header += " (mode %04o)" % state.mode
    return dict(before=before, after=kc.render_plain(masked_after), before_header=before_header, after_header="%s (mode %04o)" % (dest, want_mode))
