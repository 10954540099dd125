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
import os
import re

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

# ocid1.<resource type>.<realm>.[region][.future use].<unique id>
_OCID = re.compile(r"^ocid1\.(?P<type>[a-z0-9]+)\.(?P<realm>[a-z0-9]+)\.(?P<region>[a-z0-9-]*)(\.[a-z0-9-]*)?\.(?P<unique>[a-z0-9]{6,})$")

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


def parse_ocid(value, kind, option):
    """Check that ``value`` is an OCID of ``kind`` (e.g. 'cluster'); return its parts. No network."""
    match = _OCID.match(value or "")
    if not match:
        raise InputError(
            "%s %r is not a well-formed OCID (expected ocid1.%s.<realm>.<region>.<unique id>)" % (option, value, kind),
            option=option,
        )
    if match.group("type") != kind:
        raise InputError("%s must be an OCID of a %s, got one of a %s (%s)" % (option, kind, match.group("type"), value), option=option)
    return match.groupdict()


def region_from_ocid(ocid):
    """The region named in an OCID as a full identifier, or None (short keys are expanded)."""
    match = _OCID.match(ocid or "")
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
        try:
            with open(os.path.expanduser(token_file), "r") as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise InputError("auth_type=security_token: cannot read security_token_file %s (%s)" % (token_file, exc.strerror))
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


def container_engine_client(auth, region, service_endpoint=None, timeout=30.0, retries=3):
    import oci

    config = dict(auth.config, region=region)
    if retries > 0:
        retry_strategy = oci.retry.RetryStrategyBuilder(
            max_attempts=retries + 1, total_elapsed_time_seconds=max(60, int(timeout) * (retries + 1)), retry_max_wait_between_calls_seconds=8
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


def ensure_oke_kubeconfig(params, check_mode=False, want_diff=False):
    """The service behind okemesh.istio.oke_kubeconfig. Returns the module result dict."""
    cluster_id = params["cluster_id"]
    parse_ocid(cluster_id, "cluster", "cluster_id")
    for name, kind in (("tenancy", "tenancy"), ("api_user", "user")):
        if params.get(name):
            parse_ocid(params[name], kind, name)
    if params.get("timeout") is not None and params["timeout"] <= 0:
        raise InputError("timeout must be greater than 0", option="timeout")
    if params.get("retries") is not None and params["retries"] < 0:
        raise InputError("retries must not be negative", option="retries")
    dest = os.path.expanduser(params.get("dest") or os.path.join("~", ".kube", "config"))
    merge = params.get("merge", True)
    set_current = params.get("set_current_context", True)
    credential = params.get("credential") or "exec"
    warnings = []

    existing_text, existing_mode = kc.read_file(dest)
    existing_doc = None
    if existing_text is not None:
        if merge:
            existing_doc = kc.parse(existing_text, source="existing kubeconfig %s" % dest)
        else:
            try:
                existing_doc = kc.parse(existing_text, source=dest)
            except InputError:
                existing_doc = None  # replaced anyway

    auth = build_auth(params)
    region = resolve_region(params, auth, cluster_id)
    named = region_from_ocid(cluster_id)
    if named and named != region:
        warnings.append("cluster_id names region %s but region is %s" % (named, region))
    client = container_engine_client(
        auth, region, service_endpoint=params.get("service_endpoint"), timeout=params.get("timeout") or 30.0, retries=params.get("retries", 3)
    )
    text = fetch_kubeconfig(client, cluster_id, params["endpoint"], auth, region)
    oke_doc = kc.parse(text, source="the kubeconfig OCI returned")

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

    if merge:
        want = kc.merge(existing_doc, new_doc, set_current_context=set_current)
    else:
        want = kc.replace(new_doc, set_current_context=set_current)

    content_changed = existing_text is None or existing_doc is None or not kc.same(existing_doc, want)
    mode_changed = existing_mode is not None and existing_mode != kc.KUBECONFIG_MODE
    changed = content_changed or mode_changed
    if changed and not check_mode:
        if content_changed:
            kc.atomic_write(dest, kc.render(want))
        else:
            try:
                os.chmod(dest, kc.KUBECONFIG_MODE)
            except OSError as exc:
                raise InputError("Cannot set mode 0600 on %s: %s" % (dest, exc.strerror))

    result = dict(
        changed=changed,
        dest=dest,
        cluster_id=cluster_id,
        region=region,
        endpoint=params["endpoint"],
        server=new_doc["clusters"][0]["cluster"]["server"],
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
        if existing_text is None:
            before = ""
        elif existing_doc is None:
            before = "# (not a valid kubeconfig)\n"
        else:
            before = kc.render(kc.mask(existing_doc))
        before_header = dest if existing_text is not None else "%s (absent)" % dest
        if mode_changed:
            before_header += " (mode %04o)" % existing_mode
        result["diff"] = dict(before=before, after=kc.render(kc.mask(want)), before_header=before_header, after_header="%s (mode 0600)" % dest)
    return result
