"""istiod's run-time duties (what the istiod process does to the cluster once it runs), emulated.

The charts install the webhooks without a CA bundle (unless values set one) and, on a first
install, the validators with ``failurePolicy: Ignore``. A running istiod then, as Istio 1.30 does:

* the injection webhook patcher (``pkg/webhooks/webhookpatch.go``): every
  MutatingWebhookConfiguration labelled ``istio.io/rev=<its revision>`` (the revision's
  ``istio-sidecar-injector[-<rev>]`` and the revision tags ``istio-revision-tag-<tag>`` that point
  at it) gets the CA bundle in each webhook whose name ends in ``sidecar-injector.istio.io``;
  its failurePolicy is left alone;
* the validation webhook controller (``pkg/webhooks/validation/controller``): every
  ValidatingWebhookConfiguration labelled ``istio.io/rev=<its revision>``
  (``istio-validator[-<rev>]-<ns>``, and ``istiod-default-validator`` when the base chart's
  ``defaultRevision`` is this revision) gets the CA bundle and ``failurePolicy: Fail`` once the
  webhook answers (here: once istiod has a ready pod);
* the self-signed CA (``security/pkg/pki/ca``): Secret ``istio-ca-secret`` (type
  ``istio.io/ca-root``) in istiod's namespace, created unless it exists or a ``cacerts`` Secret
  plugs in a CA;
* the namespace controller: ConfigMap ``istio-ca-root-cert`` (label ``istio.io/config=true``, key
  ``root-cert.pem``; name from ``PILOT_CA_CERT_CONFIGMAP`` when set) in every namespace except
  kube-public, kube-node-lease and local-path-storage, also in namespaces created later, and put
  back when deleted or changed;
* the GatewayClass controller: creates ``istio`` and ``istio-remote`` (and ``istio-waypoint``
  with ``PILOT_ENABLE_AMBIENT=true``) when they do not exist; it never updates them.

The duties start when an istiod Deployment (label ``app=istiod``; revision from ``istio.io/rev``)
has a ready pod. Webhook patching can be switched off as in istiod, by an empty
``INJECTION_WEBHOOK_CONFIG_NAME`` / ``VALIDATION_WEBHOOK_CONFIG_NAME`` env on its ``discovery``
container.
"""

from __future__ import annotations

import base64
import datetime
import logging
import time
from typing import Any

from .runtime import CONFIGMAPS, DEPLOYMENTS, MWCS, NAMESPACES, Runtime, meta

log = logging.getLogger("kubesim.istiod")

VWCS = "validatingwebhookconfigurations.admissionregistration.k8s.io"
SECRETS = "secrets"
GATEWAYCLASSES = "gatewayclasses.gateway.networking.k8s.io"
ISTIOD = "istiod:control-planes"          # pseudo key: one reconcile of every istiod's duties
ROOT_CERT_CM = "istio-ca-root-cert"
ROOT_CERT_KEY = "root-cert.pem"
CA_SECRET = "istio-ca-secret"
CACERTS = "cacerts"
CA_SECRET_TYPE = "istio.io/ca-root"
INJECTOR_WEBHOOK_SUFFIX = "sidecar-injector.istio.io"
# pkg/kube/inject IgnoredNamespaces minus kube-system (the namespace controller keeps kube-system)
NO_ROOT_CERT_NAMESPACES = ("kube-public", "kube-node-lease", "local-path-storage")
GATEWAY_CLASSES = {
    "istio": ("istio.io/gateway-controller", "The default Istio GatewayClass"),
    "istio-remote": ("istio.io/unmanaged-gateway", "Remote to this cluster. Does not deploy or affect configuration."),
}
WAYPOINT_CLASS = ("istio-waypoint", "istio.io/mesh-controller", "The default Istio waypoint GatewayClass")


# ------------------------------------------------------------------------------------- istiod Deployments
def revision(dep: dict[str, Any]) -> str:
    return (meta(dep).get("labels") or {}).get("istio.io/rev") or "default"


def _env(dep: dict[str, Any]) -> dict[str, str | None]:
    for c in (((dep.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []:
        if c.get("name") == "discovery":
            return {e.get("name", ""): e.get("value") for e in c.get("env") or [] if "valueFrom" not in e}
    return {}


def is_istiod(dep: dict[str, Any]) -> bool:
    return (meta(dep).get("labels") or {}).get("app") == "istiod"


def ready_istiods(rt: Runtime) -> list[dict[str, Any]]:
    """istiod Deployments with a ready pod, the default revision first (it writes the shared objects)."""
    out = [d for d in rt.cache.list(DEPLOYMENTS) if is_istiod(d) and not meta(d).get("deletionTimestamp")
           and int((d.get("status") or {}).get("readyReplicas") or 0) > 0]
    return sorted(out, key=lambda d: (revision(d) != "default", meta(d).get("namespace") or "", meta(d).get("name") or ""))


def istiod_present(rt: Runtime) -> bool:
    return any(is_istiod(d) for d in rt.cache.list(DEPLOYMENTS))


# ------------------------------------------------------------------------------------- the CA
def _generate_ca() -> tuple[bytes, bytes]:
    """A self-signed root as istiod makes one: RSA 2048, O=<trust domain>, ten years."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cluster.local")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _secret_value(secret: dict[str, Any], key: str) -> bytes:
    try:
        return base64.b64decode((secret.get("data") or {}).get(key) or "")
    except ValueError:
        return b""


def root_cert(rt: Runtime, ns: str) -> bytes:
    """The root certificate istiod in namespace ``ns`` serves with (creating istio-ca-secret if needed)."""
    plugged = rt.store.get(SECRETS, ns, CACERTS)
    if plugged is not None:
        pem = _secret_value(plugged, "root-cert.pem") or _secret_value(plugged, "ca-cert.pem")
        if pem:
            return pem
    own = rt.store.get(SECRETS, ns, CA_SECRET)
    if own is not None:
        pem = _secret_value(own, "ca-cert.pem")
        if pem:
            return pem
    cert, key = _generate_ca()
    body = {"apiVersion": "v1", "kind": "Secret", "type": CA_SECRET_TYPE, "metadata": {"name": CA_SECRET, "namespace": ns},
            # as ca.BuildSecret writes it: no workload chain or key, the root is the CA itself
            "data": {"ca-cert.pem": _b64(cert), "ca-key.pem": _b64(key), "cert-chain.pem": "", "key.pem": "", "root-cert.pem": _b64(cert)}}
    created = rt.create(SECRETS, body)
    if created is None:     # created meanwhile (or the namespace is going away): use what is stored
        again = rt.store.get(SECRETS, ns, CA_SECRET)
        return _secret_value(again, "ca-cert.pem") if again else cert
    log.info("kubesim istiod: created %s/%s", ns, CA_SECRET)
    return cert


# ------------------------------------------------------------------------------------- webhooks
def patch_injector_webhooks(rt: Runtime, rev: str, bundle: str) -> None:
    for mwc in rt.store.list(MWCS):
        if (meta(mwc).get("labels") or {}).get("istio.io/rev") != rev:
            continue
        hooks = mwc.get("webhooks") or []
        if not any((h.get("name") or "").endswith(INJECTOR_WEBHOOK_SUFFIX) and (h.get("clientConfig") or {}).get("caBundle") != bundle
                   for h in hooks):
            continue

        def fix(cur: dict[str, Any]) -> bool:
            changed = False
            for h in cur.get("webhooks") or []:
                if (h.get("name") or "").endswith(INJECTOR_WEBHOOK_SUFFIX):
                    cc = h.setdefault("clientConfig", {})
                    if cc.get("caBundle") != bundle:
                        cc["caBundle"] = bundle
                        changed = True
            return changed

        if rt.modify(MWCS, None, meta(mwc)["name"], fix, uid=meta(mwc).get("uid")) is not None:
            log.info("kubesim istiod (%s): patched caBundle into MutatingWebhookConfiguration %s", rev, meta(mwc)["name"])


def patch_validating_webhooks(rt: Runtime, rev: str, bundle: str) -> None:
    for vwc in rt.store.list(VWCS):
        if (meta(vwc).get("labels") or {}).get("istio.io/rev") != rev:
            continue
        hooks = vwc.get("webhooks") or []
        ca_change = any((h.get("clientConfig") or {}).get("caBundle") != bundle for h in hooks)
        ignore = any(h.get("failurePolicy") not in (None, "Fail") for h in hooks)
        if not (ca_change or ignore):
            continue

        def fix(cur: dict[str, Any]) -> bool:
            for h in cur.get("webhooks") or []:
                h.setdefault("clientConfig", {})["caBundle"] = bundle
                h["failurePolicy"] = "Fail"
            return True

        if rt.modify(VWCS, None, meta(vwc)["name"], fix, uid=meta(vwc).get("uid")) is not None:
            log.info("kubesim istiod (%s): caBundle and failurePolicy Fail on ValidatingWebhookConfiguration %s", rev, meta(vwc)["name"])


# ------------------------------------------------------------------------------------- istio-ca-root-cert
def ensure_root_cert_configmaps(rt: Runtime, name: str, pem: str) -> None:
    for nsobj in rt.cache.list(NAMESPACES):
        ns = meta(nsobj)["name"]
        if ns in NO_ROOT_CERT_NAMESPACES or meta(nsobj).get("deletionTimestamp") or (nsobj.get("status") or {}).get("phase") == "Terminating":
            continue
        cur = rt.store.get(CONFIGMAPS, ns, name)
        if cur is None:
            rt.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": name, "namespace": ns, "labels": {"istio.io/config": "true"}},
                                   "data": {ROOT_CERT_KEY: pem}})
        elif (cur.get("data") or {}).get(ROOT_CERT_KEY) != pem:
            def fix(obj: dict[str, Any]) -> bool:
                obj.setdefault("data", {})[ROOT_CERT_KEY] = pem
                return True
            rt.modify(CONFIGMAPS, ns, name, fix)


# ------------------------------------------------------------------------------------- GatewayClasses
def ensure_gateway_classes(rt: Runtime, ambient: bool = False) -> None:
    """istiod's class controller: create the built-in classes that do not exist (never update them)."""
    reg = getattr(rt.cluster, "registry", None)
    if reg is None or reg.by_key(GATEWAYCLASSES) is None:
        return
    classes = dict(GATEWAY_CLASSES)
    if ambient:
        classes[WAYPOINT_CLASS[0]] = WAYPOINT_CLASS[1:]
    for name, (controller, description) in classes.items():
        if rt.store.get(GATEWAYCLASSES, None, name) is not None:
            continue
        out = rt.create(GATEWAYCLASSES, {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                                         "metadata": {"name": name},
                                         "spec": {"controllerName": controller, "description": description}})
        if out is not None:
            rt.update_status(GATEWAYCLASSES, out, {"conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "Handled by Istio controller",
                 "observedGeneration": meta(out).get("generation", 1),
                 "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]})


# ------------------------------------------------------------------------------------- the reconcile
def reconcile(rt: Runtime, _ns: str | None, _name: str) -> None:
    ready = ready_istiods(rt)
    if not ready:
        return
    roots: dict[str, bytes] = {}
    for dep in ready:
        ns = meta(dep).get("namespace") or ""
        if ns not in roots:
            roots[ns] = root_cert(rt, ns)
        bundle = _b64(roots[ns])
        env = _env(dep)
        if env.get("INJECTION_WEBHOOK_CONFIG_NAME", "istio-sidecar-injector") != "":
            patch_injector_webhooks(rt, revision(dep), bundle)
        if env.get("VALIDATION_WEBHOOK_CONFIG_NAME", "istio-istio-system") != "":
            patch_validating_webhooks(rt, revision(dep), bundle)
    first = ready[0]
    ensure_root_cert_configmaps(rt, _env(first).get("PILOT_CA_CERT_CONFIGMAP") or ROOT_CERT_CM,
                                roots[meta(first).get("namespace") or ""].decode())
    ensure_gateway_classes(rt, ambient=any(str(_env(d).get("PILOT_ENABLE_AMBIENT")).lower() == "true" for d in ready))


def _mark(rt: Runtime, *_args: Any) -> None:
    rt.mark(ISTIOD, None, "all")


def _deployment_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if is_istiod(obj):
        _mark(rt)


def _configmap_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if meta(obj).get("name") == ROOT_CERT_CM or (old is not None and meta(old).get("name") == ROOT_CERT_CM):
        _mark(rt)


def _namespace_fanout(rt: Runtime, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if etype == "ADDED":
        _mark(rt)


def _periodic(rt: Runtime) -> None:
    # istiod re-lists on its informers' resync; also picks up webhooks whose events were missed
    if istiod_present(rt):
        _mark(rt)


def register(rt: Runtime) -> None:
    rt.reconcilers[ISTIOD] = reconcile
    rt.fanout[DEPLOYMENTS].append(_deployment_fanout)
    rt.fanout[MWCS].append(_mark)
    rt.fanout[VWCS].append(_mark)
    rt.fanout[SECRETS].append(lambda rt, etype, obj, old: _mark(rt) if meta(obj).get("name") in (CA_SECRET, CACERTS) else None)
    rt.fanout[CONFIGMAPS].append(_configmap_fanout)
    rt.fanout[NAMESPACES].append(_namespace_fanout)
    rt.fanout[GATEWAYCLASSES].append(lambda rt, etype, obj, old: _mark(rt) if etype == "DELETED" else None)
    rt.periodic.append(_periodic)
