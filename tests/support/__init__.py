"""The one test-support layer of okemesh.istio.

* ``kubesim.testing`` (the simulator's helper library, re-exported here): ``run``, ``kubectl``,
  ``kubectl_json``, ``helm``, ``apply``, ``get_json``, ``pods``, ``wait_for``, ``api_client``,
  ``http_get`` and manifest builders (``namespace``, ``deployment``, ``service``,
  ``injector_webhook``, ``ISTIO_CRDS``);
* :mod:`tests.support.playbook`: ``run_playbook`` / ``PlaybookResult`` / ``playbook_env``;
* :mod:`tests.support.cluster`: ``get``, ``helm_env``, ``kubectl_rc_json``;
* :mod:`tests.support.fixtures`: the ``playbook`` fixture. The ``kubesim``/``kubesim_bare``
  fixtures come from ``kubesim.pytest_plugin`` and the OCI stub's from ``tests.oci_stub``; all
  are registered in tests/conftest.py.
"""

from kubesim.testing import (
    BIN,
    ISTIO_CRDS,
    api_client,
    apply,
    container_names,
    deployment,
    get_json,
    helm,
    http_get,
    injector_webhook,
    kubectl,
    kubectl_json,
    namespace,
    pods,
    run,
    service,
    wait_for,
)

from .cluster import get, helm_env, kubectl_rc_json
from .playbook import REPO, PlaybookResult, playbook_env, run_playbook

__all__ = [
    "BIN", "ISTIO_CRDS", "REPO", "PlaybookResult", "api_client", "apply", "container_names", "deployment", "get", "get_json", "helm",
    "helm_env", "http_get", "injector_webhook", "kubectl", "kubectl_json", "kubectl_rc_json", "namespace", "playbook_env", "pods",
    "run", "run_playbook", "service", "wait_for",
]
