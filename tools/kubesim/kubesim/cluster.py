"""Wiring of kubesim: one ``Cluster`` = store + settings + resource registry + HTTP server.

Plug-in point for the cluster-behaviour half (part 2)
-----------------------------------------------------
At start, ``kubesim.behaviour.install(cluster)`` is called once, after the listening socket is bound (so
``cluster.url`` is known) and before the first request is served.  If the module does not
exist the simulator runs without behaviour (``--no-behaviour`` skips it on purpose).
``cluster`` exposes:

* ``cluster.store``      -- ``kubesim.api.store.Store`` (get/list/create/update/update_status/
  delete/add_listener/add_admission; see its docstring).  Store calls from controllers skip
  API-side defaulting and admission; they are thread-safe.
* ``cluster.settings``   -- ``kubesim.settings.Settings`` (live: PATCH /kubesim/v1/settings
  changes it while running).
* ``cluster.registry``   -- ``kubesim.api.registry.Registry`` (``by_key("deployments.apps")``,
  ``by_gvk(group, version, kind)``, ``by_kind(kind)``, ``all()``).
* ``cluster.stop_event`` -- ``threading.Event`` set when the simulator shuts down; background
  threads should exit when it is set.
* ``cluster.url``        -- ``https://127.0.0.1:PORT`` (or http with ``--insecure-http``).
* ``cluster.token``      -- the bearer token.

Listeners run synchronously in the thread that made the change (for API requests: the
server's event loop), so they must be quick; do slow work in your own thread.
"""

from __future__ import annotations

import threading
from typing import Any

from .api.defaults import CRD_KEY, Allocator, sync_crd
from .api.registry import Registry
from .api.store import Store
from .settings import Settings

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Cluster:
    def __init__(self, settings: Settings | None = None, token: str = "kubesim-token") -> None:  # noqa: S107 - a simulator
        self.settings = settings or Settings()
        self.registry = Registry()
        self.store = Store(self.settings, self.registry)
        self.alloc = Allocator()          # cluster IPs and node ports, for API writes and controllers alike
        self.stop_event = threading.Event()
        self.token = token
        self.url = ""
        self.behaviour_installed = False
        self.client_cert_auth = False     # accept a client certificate signed by our CA when no token is sent
        self.root_ca = ""                 # PEM of the simulator's CA: kube-root-ca.crt in every namespace
        self.store.add_listener(self._builtin_listener)

    def _builtin_listener(self, event: str, key: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if key == CRD_KEY:
            sync_crd(self.registry, event, obj, old)
        elif key == "namespaces" and event == "ADDED":
            # what the service-account controller does in a real cluster
            ns = obj["metadata"]["name"]
            if self.store.get_ref("serviceaccounts", ns, "default") is None:
                try:
                    self.store.create("serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                          "metadata": {"name": "default", "namespace": ns}})
                except Exception as exc:  # noqa: BLE001 - namespace may already be terminating
                    print(f"kubesim: default service account in {ns}: {exc!r}", flush=True)
            self._publish_root_ca(ns)

    def _publish_root_ca(self, ns: str) -> None:
        """What kube-controller-manager's root-ca-cert-publisher does: kube-root-ca.crt in every namespace."""
        if not self.root_ca or self.store.get_ref("configmaps", ns, "kube-root-ca.crt") is not None:
            return
        try:
            self.store.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": "kube-root-ca.crt", "namespace": ns,
                                                          "annotations": {"kubernetes.io/description": (
                                                              "Contains a CA bundle that can be used to verify the kube-apiserver "
                                                              "when using internal endpoints such as the internal service IP or "
                                                              "kubernetes.default.svc. No other usage is guaranteed across distributions "
                                                              "of Kubernetes clusters.")}},
                                             "data": {"ca.crt": self.root_ca}})
        except Exception as exc:  # noqa: BLE001 - namespace may already be terminating
            print(f"kubesim: kube-root-ca.crt in {ns}: {exc!r}", flush=True)

    def set_root_ca(self, pem: str) -> None:
        self.root_ca = pem
        for e in self.store.entries("namespaces"):
            self._publish_root_ca(e.obj["metadata"]["name"])

    def bootstrap(self) -> None:
        for ns in SYSTEM_NAMESPACES:
            self.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                                             "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        self.store.create("services", {"apiVersion": "v1", "kind": "Service",
                                       "metadata": {"name": "kubernetes", "namespace": "default",
                                                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                                       "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                                                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                                                "sessionAffinity": "None"},
                                       "status": {"loadBalancer": {}}})

    def install_behaviour(self) -> None:
        from .behaviour import install

        install(self)
        self.behaviour_installed = True
