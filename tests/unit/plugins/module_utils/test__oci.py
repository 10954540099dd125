"""OCI auth, kubeconfig download and token minting (module_utils/_oci.py).

The real OCI Python SDK talks to tests/oci_stub, a local HTTP stub of the Container Engine
endpoint that verifies the request signatures with the test key pairs.
"""

from __future__ import annotations

import base64
import socket
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.okemesh.istio.plugins.module_utils import _oci
from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError, OCIError
from tests.oci_stub.identity import CLUSTER, REGION, USER, make_identity, write_key

OTHER_CLUSTER = "ocid1.cluster.oc1.iad.aaaaaaaanotthereatall000000000000000000000000000000000000"


def params(ident, stub, **overrides):
    p = dict(
        auth_type="api_key",
        config_file_location=str(ident.config_file),
        config_profile_name=None,
        region=None,
        tenancy=None,
        api_user=None,
        api_user_fingerprint=None,
        api_user_key_file=None,
        api_user_key_pass_phrase=None,
        service_endpoint=stub.url,
        timeout=5.0,
        retries=0,
    )
    p.update(overrides)
    return p


def fetch(ident, stub, cluster=CLUSTER, endpoint="PUBLIC_ENDPOINT", **overrides):
    p = params(ident, stub, **overrides)
    auth = _oci.build_auth(p)
    region = _oci.resolve_region(p, auth, cluster)
    client = _oci.container_engine_client(auth, region, service_endpoint=p["service_endpoint"], timeout=p["timeout"], retries=p["retries"])
    return _oci.fetch_kubeconfig(client, cluster, endpoint, auth, region)


# --- OCIDs and regions (no network) ---------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [CLUSTER, "ocid1.cluster.oc1.us-phoenix-1.aaaaaaaaabc123", "ocid1.cluster.oc2.iad.extra.aaaaaaaaabc123"],
)
def test_parse_ocid_accepts(value):
    assert _oci.parse_ocid(value, "cluster", "cluster_id")["type"] == "cluster"


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "not a well-formed OCID"),
        ("cluster-1234", "not a well-formed OCID"),
        ("ocid1.cluster.oc1.iad.", "not a well-formed OCID"),
        ("ocid1.cluster.oc1.iad.AAAA AAAA", "not a well-formed OCID"),
        (USER, "the OCID of a user, not of a cluster"),
    ],
)
def test_parse_ocid_rejects(value, message):
    with pytest.raises(InputError, match=message):
        _oci.parse_ocid(value, "cluster", "cluster_id")


def test_region_from_ocid():
    assert _oci.region_from_ocid(CLUSTER) == "us-ashburn-1"
    assert _oci.region_from_ocid("ocid1.cluster.oc1.eu-frankfurt-1.aaaaaaaaabc123") == "eu-frankfurt-1"
    assert _oci.region_from_ocid("ocid1.tenancy.oc1..aaaaaaaaabc123") is None


# --- exec args per auth type ------------------------------------------------------------------
@pytest.mark.parametrize(
    "auth_type, profile, config_file, explicit, expected",
    [
        ("api_key", "DEFAULT", "~/.oci/config", False, []),
        ("api_key", "prod", "~/.oci/config", False, ["--profile", "prod"]),
        ("api_key", "DEFAULT", "/etc/oci/config", True, ["--config-file", "/etc/oci/config"]),
        ("security_token", "sess", "~/.oci/config", False, ["--auth", "security_token", "--profile", "sess"]),
        ("instance_principal", None, None, False, ["--auth", "instance_principal"]),
        ("resource_principal", None, None, False, ["--auth", "resource_principal"]),
    ],
)
def test_exec_args(auth_type, profile, config_file, explicit, expected):
    assert _oci.Auth(auth_type, {}, None, profile, config_file, explicit).exec_args() == expected


# --- config and key errors (before any request) ----------------------------------------------
def test_missing_config_file(tmp_path, oci_stub):
    with pytest.raises(InputError, match="OCI config file .* does not exist"):
        _oci.build_auth(dict(auth_type="api_key", config_file_location=str(tmp_path / "nope")))
    assert oci_stub.requests == []


def test_missing_profile(oci_identity, oci_stub):
    with pytest.raises(InputError, match="Profile prod not found in OCI config file"):
        _oci.build_auth(params(oci_identity, oci_stub, config_profile_name="prod"))


def test_missing_fields_named(oci_identity, oci_stub):
    oci_identity.config_file.write_text("[DEFAULT]\nregion=us-ashburn-1\n")
    with pytest.raises(InputError, match="needs tenancy, user, fingerprint, key_file"):
        _oci.build_auth(params(oci_identity, oci_stub))


def test_unreadable_key(oci_identity, oci_stub):
    oci_identity.key_file.unlink()
    with pytest.raises(InputError, match="Private key file .* does not exist"):
        _oci.build_auth(params(oci_identity, oci_stub))


def test_garbage_key(oci_identity, oci_stub):
    oci_identity.key_file.write_text("-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n")
    with pytest.raises(InputError, match="not a PEM private key or the passphrase is wrong") as err:
        _oci.build_auth(params(oci_identity, oci_stub))
    assert "not a key" not in err.value.msg


def test_encrypted_key_needs_pass_phrase(tmp_path, oci_stub):
    ident = make_identity(oci_stub, tmp_path, pass_phrase="s3cr3t-phrase")
    text = fetch(ident, oci_stub)  # pass_phrase from the profile
    assert "cluster-c4tqmrsmy2d" in text
    ident.pass_phrase = None
    ident.write_config({})
    with pytest.raises(InputError, match="is encrypted: set api_user_key_pass_phrase"):
        _oci.build_auth(params(ident, oci_stub))
    with pytest.raises(InputError, match="passphrase is wrong") as err:
        _oci.build_auth(params(ident, oci_stub, api_user_key_pass_phrase="wrong-phrase"))
    assert "wrong-phrase" not in str(err.value.fail_kwargs())
    # the right passphrase from the option works end to end
    text = fetch(ident, oci_stub, api_user_key_pass_phrase="s3cr3t-phrase")
    assert "cluster-c4tqmrsmy2d" in text


def test_options_without_config_file(tmp_path, oci_identity, oci_stub):
    text = fetch(
        oci_identity,
        oci_stub,
        config_file_location=None,
        tenancy=oci_identity.tenancy,
        api_user=oci_identity.user,
        api_user_fingerprint=oci_identity.fingerprint,
        api_user_key_file=str(oci_identity.key_file),
        region=REGION,
    )
    assert "server: https://203.0.113.10:6443" in text


# --- talking to the stub ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "endpoint, server",
    [
        ("PUBLIC_ENDPOINT", "https://203.0.113.10:6443"),
        ("PRIVATE_ENDPOINT", "https://10.0.0.10:6443"),
        ("VCN_HOSTNAME", "https://cc4tqmrsmy2d.k8sapi.okevcn.oraclevcn.com:6443"),
        ("LEGACY_KUBERNETES", "https://cc4tqmrsmy2d.us-ashburn-1.clusters.oci.oraclecloud.com:6443"),
    ],
)
def test_fetch_each_endpoint(oci_identity, oci_stub, endpoint, server):
    text = fetch(oci_identity, oci_stub, endpoint=endpoint)
    assert f"server: {server}\n" in text
    request = oci_stub.requests[-1]
    assert request["status"] == 200 and request["details"] == {"tokenVersion": "2.0.0", "endpoint": endpoint}
    assert request["key_id"].endswith("/" + oci_identity.fingerprint)


def test_401_explains_auth(tmp_path, oci_stub):
    ident = make_identity(oci_stub, tmp_path, register=False)  # the stub does not know this key
    with pytest.raises(OCIError) as err:
        fetch(ident, oci_stub)
    msg = err.value.msg
    assert "401 NotAuthenticated" in msg and "auth_type=api_key" in msg and f"profile DEFAULT of {ident.config_file}" in msg
    assert ident.user in msg and "region us-ashburn-1" in msg and "fingerprint" in msg
    assert err.value.details["status"] == 401 and err.value.details["opc_request_id"]
    assert oci_stub.requests[-1]["reason"] == "unknown keyId"


def test_401_on_wrong_key_for_known_fingerprint(tmp_path, oci_stub):
    ident = make_identity(oci_stub, tmp_path)
    write_key(ident.key_file, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(OCIError, match="401"):
        fetch(ident, oci_stub)
    assert oci_stub.requests[-1]["reason"] == "signature does not verify"


def test_404_unknown_cluster(oci_identity, oci_stub):
    with pytest.raises(OCIError) as err:
        fetch(oci_identity, oci_stub, cluster=OTHER_CLUSTER)
    assert f"Cluster {OTHER_CLUSTER} was not found in region us-ashburn-1" in err.value.msg
    assert "NotAuthorizedOrNotFound" in err.value.msg and "IAM policy" in err.value.msg
    assert err.value.details["status"] == 404


def test_404_names_region_mismatch(oci_identity, oci_stub):
    cluster = "ocid1.cluster.oc1.phx.aaaaaaaaphoenixcluster000000000000000000000000000000"
    oci_stub.add_cluster(cluster, region="us-phoenix-1")
    with pytest.raises(OCIError, match="The cluster OCID names region us-phoenix-1 but the request went to us-ashburn-1"):
        fetch(oci_identity, oci_stub, cluster=cluster)


def test_400_endpoint_not_exposed(oci_identity, oci_stub):
    oci_stub.clusters[CLUSTER].public_ip = None
    with pytest.raises(OCIError, match="endpoint PUBLIC_ENDPOINT .*400 InvalidParameter.*does not have a PUBLIC_ENDPOINT"):
        fetch(oci_identity, oci_stub)


def test_unreachable_endpoint(oci_identity, oci_stub):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(OCIError, match=rf"Could not reach the OCI Container Engine endpoint http://127.0.0.1:{port}"):
        fetch(oci_identity, oci_stub, service_endpoint=f"http://127.0.0.1:{port}")


def test_retries_transient_errors(oci_identity, oci_stub):
    oci_stub.fail_next.append((503, "ServiceUnavailable", "try later"))
    text = fetch(oci_identity, oci_stub, retries=2)
    assert "cluster-c4tqmrsmy2d" in text
    assert [r["status"] for r in oci_stub.requests] == [503, 200]


def test_no_retry_when_disabled(oci_identity, oci_stub):
    oci_stub.fail_next.append((500, "InternalServerError", "boom"))
    with pytest.raises(OCIError, match="answered 500 InternalServerError"):
        fetch(oci_identity, oci_stub, retries=0)
    assert len(oci_stub.requests) == 1


def test_security_token_auth(tmp_path, oci_identity, oci_stub):
    session_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = write_key(tmp_path / "session.pem", session_key)
    token_file = tmp_path / "token"
    token_file.write_text(oci_stub.issue_session_token(session_key.public_key()))
    oci_identity.write_config({"sess": {"security_token_file": str(token_file), "key_file": str(key_file), "region": REGION,
                                        "tenancy": oci_identity.tenancy, "fingerprint": "00"}})
    text = fetch(oci_identity, oci_stub, auth_type="security_token", config_profile_name="sess")
    assert "cluster-c4tqmrsmy2d" in text and oci_stub.requests[-1]["key_id"].startswith("ST$")
    # an expired session is a 401 that says to refresh
    token_file.write_text(oci_stub.issue_session_token(session_key.public_key(), lifetime=-10))
    with pytest.raises(OCIError, match="oci session refresh"):
        fetch(oci_identity, oci_stub, auth_type="security_token", config_profile_name="sess")


def test_mint_token_is_a_signed_cluster_request(oci_identity, oci_stub):
    auth = _oci.build_auth(params(oci_identity, oci_stub))
    token, expires = _oci.mint_token(auth.signer, REGION, CLUSTER)
    url = base64.urlsafe_b64decode(token).decode()
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"https://containerengine.us-ashburn-1.oraclecloud.com/cluster_request/{CLUSTER}"
    assert sorted(dict(parse_qsl(parts.query))) == ["authorization", "date"]
    assert oci_stub.verify_cluster_token(token) == {"cluster_id": CLUSTER, "region": REGION, "key_id": auth.signer.api_key}
    # tampering with the cluster id breaks the signature
    forged = base64.urlsafe_b64encode(url.replace(CLUSTER, OTHER_CLUSTER).encode()).decode()
    with pytest.raises(Exception, match="signature does not verify"):
        oci_stub.verify_cluster_token(forged)
    assert expires.tzinfo is not None


def test_instance_principal_off_oci_is_clear(monkeypatch):
    import oci

    def boom(*args, **kwargs):
        raise OSError("metadata service unreachable")

    monkeypatch.setattr(oci.auth.signers, "InstancePrincipalsSecurityTokenSigner", boom)
    with pytest.raises(OCIError, match="auth_type=instance_principal could not obtain credentials .* OCI compute instance"):
        _oci.build_auth(dict(auth_type="instance_principal", region=REGION))
