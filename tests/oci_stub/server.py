"""A local HTTP stub of the OCI Container Engine endpoint (test infrastructure, not OCI).

It answers ``POST /20180222/clusters/{clusterId}/kubeconfig/content`` the way OKE does, after
really verifying the request's HTTP signature (draft-cavage, rsa-sha256, the headers the OCI
SDK signs) against the public keys it was given:

- keyId ``<tenancy>/<user>/<fingerprint>``: an API key registered with ``add_api_key``;
- keyId ``ST$<jwt>``: a session token (security_token / resource principal). The JWT must be
  signed by the stub's own identity key (``issue_session_token`` makes such tokens); its
  ``jwk`` claim carries the public key that must verify the request signature.

Wrong signature, unknown key, stale date or body hash mismatch -> 401 NotAuthenticated;
unknown cluster (or a cluster of another region) -> 404 NotAuthorizedOrNotFound; an endpoint
type the cluster does not expose -> 400 InvalidParameter. ``verify_cluster_token`` checks a
token made like ``oci ce cluster generate-token`` makes it, the way an OKE API server would.
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import hashlib
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

API_PREFIX = "/20180222"
KUBECONFIG_PATH = re.compile(r"^/20180222/clusters/(?P<cluster>[^/]+)/kubeconfig/content$")
ENDPOINTS = ("PUBLIC_ENDPOINT", "PRIVATE_ENDPOINT", "VCN_HOSTNAME", "LEGACY_KUBERNETES")
BODY_HEADERS = ["date", "(request-target)", "host", "content-length", "content-type", "x-content-sha256"]
GENERIC_HEADERS = ["date", "(request-target)", "host"]
MAX_CLOCK_SKEW = 300  # seconds, like OCI


class StubAuthError(Exception):
    """The request is not authenticated (the stub answers 401)."""


def fingerprint(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.md5(der, usedforsecurity=False).hexdigest()  # noqa: S324 - OCI key fingerprints are MD5
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclasses.dataclass
class StubCluster:
    cluster_id: str
    region: str
    public_ip: str | None = "203.0.113.10"
    private_ip: str = "10.0.0.10"
    vcn_hostname: bool = True
    # fault knob: the body answered instead of the kubeconfig (bytes as they are), to test how a
    # client copes with a broken answer; OKE itself always answers a kubeconfig
    content_override: bytes | None = None

    @property
    def suffix(self) -> str:
        return self.cluster_id[-11:]

    def server(self, endpoint: str) -> str | None:
        if endpoint == "PUBLIC_ENDPOINT":
            return f"https://{self.public_ip}:6443" if self.public_ip else None
        if endpoint == "PRIVATE_ENDPOINT":
            return f"https://{self.private_ip}:6443"
        if endpoint == "VCN_HOSTNAME":
            return f"https://c{self.suffix}.k8sapi.okevcn.oraclevcn.com:6443" if self.vcn_hostname else None
        return f"https://c{self.suffix}.{self.region}.clusters.oci.oraclecloud.com:6443"

    def ca_data(self) -> str:
        body = base64.b64encode(hashlib.sha256(self.cluster_id.encode()).digest() * 8).decode()
        pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(body[i : i + 64] for i in range(0, len(body), 64)) + "\n-----END CERTIFICATE-----\n"
        return base64.b64encode(pem.encode()).decode()

    def kubeconfig(self, endpoint: str) -> str:
        """The kubeconfig YAML, laid out like the one OKE returns."""
        s = self.suffix
        return (
            "---\n"
            "apiVersion: v1\n"
            'kind: ""\n'
            "clusters:\n"
            f"  - name: cluster-{s}\n"
            "    cluster:\n"
            f"      server: {self.server(endpoint)}\n"
            f"      certificate-authority-data: {self.ca_data()}\n"
            "users:\n"
            f"  - name: user-{s}\n"
            "    user:\n"
            "      exec:\n"
            "        apiVersion: client.authentication.k8s.io/v1beta1\n"
            "        args:\n"
            "          - ce\n"
            "          - cluster\n"
            "          - generate-token\n"
            "          - --cluster-id\n"
            f"          - {self.cluster_id}\n"
            "          - --region\n"
            f"          - {self.region}\n"
            "        command: oci\n"
            "        env: []\n"
            "contexts:\n"
            f"  - name: context-{s}\n"
            "    context:\n"
            f"      cluster: cluster-{s}\n"
            f"      user: user-{s}\n"
            f"current-context: context-{s}\n"
        )


def parse_authorization(value: str) -> dict[str, str]:
    if not value or not value.startswith("Signature "):
        raise StubAuthError("authorization header is not an HTTP Signature")
    params = dict(re.findall(r'(\w+)="([^"]*)"', value[len("Signature ") :]))
    for key in ("keyId", "algorithm", "headers", "signature"):
        if key not in params:
            raise StubAuthError(f"authorization lacks {key}")
    if params["algorithm"] != "rsa-sha256":
        raise StubAuthError(f"unsupported algorithm {params['algorithm']}")
    if params.get("version", "1") != "1":
        raise StubAuthError(f"unsupported signature version {params['version']}")
    return params


class OCIStub:
    """The stub server. ``url`` is its base URL (what ``service_endpoint`` takes)."""

    def __init__(self, region: str = "us-ashburn-1", *, latency: float = 0.0, now=time.time) -> None:
        self.region = region
        self.latency = latency
        self._now = now
        self.clusters: dict[str, StubCluster] = {}
        self.api_keys: dict[str, rsa.RSAPublicKey] = {}
        self.identity_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.requests: list[dict[str, Any]] = []  # one entry per request: method, path, status, key_id, body
        self.fail_next: list[tuple[int, str, str]] = []  # queued (status, code, message) answers
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- configuration -----------------------------------------------------------------
    def add_cluster(self, cluster_id: str, region: str | None = None, **kwargs: Any) -> StubCluster:
        cluster = StubCluster(cluster_id, region or self.region, **kwargs)
        self.clusters[cluster_id] = cluster
        return cluster

    def add_api_key(self, tenancy: str, user: str, public_key: rsa.RSAPublicKey) -> str:
        key_id = f"{tenancy}/{user}/{fingerprint(public_key)}"
        self.api_keys[key_id] = public_key
        return key_id

    def issue_session_token(self, public_key: rsa.RSAPublicKey, *, lifetime: int = 3600, subject: str = "ocid1.user.oc1..session") -> str:
        """A JWT like OCI's session tokens: signed by the stub, carrying the session public key."""
        numbers = public_key.public_numbers()
        now = int(self._now())
        header = {"alg": "RS256", "typ": "JWT", "kid": "stub"}
        claims = {
            "sub": subject,
            "iss": "authService.oracle.com",
            "iat": now,
            "exp": now + lifetime,
            "jwk": {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "session", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)},
        }
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        sig = self.identity_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(sig)

    # --- verification ------------------------------------------------------------------
    def _session_key(self, token: str) -> rsa.RSAPublicKey:
        try:
            head, body, sig = token.split(".")
            self.identity_key.public_key().verify(_b64url_decode(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
            claims = json.loads(_b64url_decode(body))
        except (ValueError, InvalidSignature) as exc:
            raise StubAuthError(f"session token is not valid ({exc.__class__.__name__})") from exc
        if claims.get("exp", 0) < self._now():
            raise StubAuthError("session token expired")
        jwk = claims.get("jwk") or {}
        n = int.from_bytes(_b64url_decode(jwk["n"]), "big")
        e = int.from_bytes(_b64url_decode(jwk["e"]), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()

    def public_key_for(self, key_id: str) -> rsa.RSAPublicKey:
        if key_id.startswith("ST$"):
            return self._session_key(key_id[3:])
        key = self.api_keys.get(key_id)
        if key is None:
            raise StubAuthError("unknown keyId")
        return key

    def verify(self, method: str, target: str, headers: dict[str, str], body: bytes | None, host: str) -> str:
        """Verify a signed request; return the keyId. ``headers`` keys must be lower case."""
        params = parse_authorization(headers.get("authorization", ""))
        signed = params["headers"].split()
        needed = BODY_HEADERS if method.upper() in ("POST", "PUT", "PATCH") else GENERIC_HEADERS
        missing = [h for h in needed if h not in signed]
        if missing:
            raise StubAuthError(f"signature does not cover {', '.join(missing)}")
        lines = []
        for name in signed:
            if name == "(request-target)":
                lines.append(f"(request-target): {method.lower()} {target}")
            elif name == "host":
                lines.append(f"host: {host}")
            elif name in headers:
                lines.append(f"{name}: {headers[name]}")
            else:
                raise StubAuthError(f"signed header {name} is missing")
        date = headers.get("date") or headers.get("x-date")
        try:
            when = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError) as exc:
            raise StubAuthError("date header missing or malformed") from exc
        if abs(self._now() - when) > MAX_CLOCK_SKEW:
            raise StubAuthError("date is outside the allowed clock skew")
        if body is not None and "x-content-sha256" in signed:
            if headers.get("x-content-sha256") != base64.b64encode(hashlib.sha256(body).digest()).decode():
                raise StubAuthError("x-content-sha256 does not match the body")
            if headers.get("content-length") != str(len(body)):
                raise StubAuthError("content-length does not match the body")
        key = self.public_key_for(params["keyId"])
        try:
            key.verify(base64.b64decode(params["signature"]), "\n".join(lines).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError) as exc:
            raise StubAuthError("signature does not verify") from exc
        return params["keyId"]

    def verify_cluster_token(self, token: str) -> dict[str, str]:
        """Check a generate-token style token as OKE would; returns cluster_id, region, key_id."""
        try:
            url = _b64url_decode(token).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise StubAuthError("token is not base64url") from exc
        parts = urlsplit(url)
        match = re.match(r"^containerengine\.(?P<region>[a-z0-9-]+)\.oraclecloud\.com$", parts.netloc)
        path = re.match(r"^/cluster_request/(?P<cluster>[^/]+)$", parts.path)
        if parts.scheme != "https" or not match or not path:
            raise StubAuthError(f"token URL is not a cluster_request URL: {parts.scheme}://{parts.netloc}{parts.path}")
        query = dict(parse_qsl(parts.query))
        if "authorization" not in query or "date" not in query:
            raise StubAuthError("token URL lacks authorization/date parameters")
        key_id = self.verify("GET", parts.path, {"authorization": query["authorization"], "date": query["date"]}, None, parts.netloc)
        return {"cluster_id": path.group("cluster"), "region": match.group("region"), "key_id": key_id}

    # --- HTTP --------------------------------------------------------------------------
    def start(self) -> OCIStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.send_header("opc-request-id", uuid.uuid4().hex.upper())
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: str, message: str) -> None:
                self._answer(status, json.dumps({"code": code, "message": message}).encode(), "application/json")

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if stub.latency:
                    time.sleep(stub.latency)
                record: dict[str, Any] = {"method": self.command, "path": self.path, "body": body, "status": None, "key_id": None}
                with stub._lock:
                    stub.requests.append(record)
                    queued = stub.fail_next.pop(0) if stub.fail_next else None
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    record["key_id"] = stub.verify(self.command, self.path, headers, body if self.command in ("POST", "PUT", "PATCH") else None,
                                                   headers.get("host", ""))
                except StubAuthError as exc:
                    record["status"] = 401
                    record["reason"] = str(exc)
                    return self._error(401, "NotAuthenticated", "The required information to complete authentication was not provided or was incorrect.")
                if queued:
                    record["status"] = queued[0]
                    return self._error(*queued)
                match = KUBECONFIG_PATH.match(urlsplit(self.path).path)
                if self.command != "POST" or not match:
                    record["status"] = 404
                    return self._error(404, "NotAuthorizedOrNotFound", f"Unknown resource {self.path}")
                cluster = stub.clusters.get(match.group("cluster"))
                if cluster is None or cluster.region != stub.region:
                    record["status"] = 404
                    return self._error(404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")
                try:
                    details = json.loads(body or b"{}")
                except ValueError:
                    record["status"] = 400
                    return self._error(400, "InvalidParameter", "Request body is not JSON")
                record["details"] = details
                if details.get("tokenVersion", "2.0.0") != "2.0.0":
                    record["status"] = 400
                    return self._error(400, "InvalidParameter", "Unsupported tokenVersion")
                endpoint = details.get("endpoint") or ("PUBLIC_ENDPOINT" if cluster.public_ip else "PRIVATE_ENDPOINT")
                if endpoint not in ENDPOINTS or cluster.server(endpoint) is None:
                    record["status"] = 400
                    return self._error(400, "InvalidParameter", f"The cluster does not have a {endpoint} endpoint")
                record["status"] = 200
                body = cluster.content_override if cluster.content_override is not None else cluster.kubeconfig(endpoint).encode()
                self._answer(200, body, "application/x-yaml")

            do_POST = do_GET = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="oci-stub", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OCIStub:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
