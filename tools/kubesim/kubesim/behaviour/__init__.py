"""kubesim's cluster behaviour: what a real cluster's controllers, kubelets, cloud controller and
istiod do, emulated in the spirit of KWOK (object state only; nothing runs containers).

One file per controller; each has ``register(rt)`` that adds its reconcilers, event fan-outs and
periodic checks to the :class:`~kubesim.behaviour.runtime.Runtime`.  The API half calls
:func:`install` once at start (``Cluster.install_behaviour``).
"""

from __future__ import annotations

import logging
from typing import Any

from . import (
    addons,
    cloud_lb,
    daemonset,
    deployment,
    endpoints,
    gateway_api,
    istio_injector,
    istiod,
    job,
    kubelet,
    nodes,
    replicaset,
    statefulset,
    telemetry,
)
from .runtime import WATCHED, Runtime, meta

log = logging.getLogger("kubesim.behaviour")

CONTROLLERS = (nodes, kubelet, replicaset, deployment, statefulset, daemonset, job, endpoints, istio_injector, istiod,
               cloud_lb, gateway_api, telemetry, addons)


def install(cluster: Any) -> Runtime:
    """Install the cluster behaviour into a running kubesim (called by the API half at start)."""
    rt = Runtime(cluster)
    # prime the cache with what already exists (a restarted simulator, objects created early)
    for key in WATCHED:
        try:
            for obj in cluster.store.list(key):
                rt.cache.apply("ADDED", key, obj)
        except Exception as exc:   # noqa: BLE001 - kinds not served yet (CRDs) are fine
            log.debug("kubesim: prime %s: %s", key, exc)
    for controller in CONTROLLERS:
        controller.register(rt)
    cluster.store.add_listener(rt.listener)
    nodes.ensure_nodes(rt)
    # objects that existed before install need a first reconcile
    for key in list(rt.reconcilers):
        for obj in rt.cache.list(key):
            rt.mark(key, meta(obj).get("namespace"), meta(obj)["name"])
    rt.start()
    cluster.behaviour = rt
    return rt
