"""The roles' retries of transient API errors, against kubesim (the Kubernetes API simulator)
with its fault knobs: an API path answers 500, 429 (Retry-After) or 503 until a task of the role
has met the fault and retried, then recovers; the roles' kubernetes.core and helm tasks retry
and converge. A real error (422 Invalid) fails at once, without a retry.

The test follows the run in ansible's log (ANSIBLE_LOG_PATH) and switches the fault off through
kubesim's admin endpoint when the first retry shows up, so nothing depends on timing; the
retries (okemesh_api_retries x okemesh_api_retry_delay) are bounded, so a task that does not
retry fails the run instead of hanging.
"""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path

import pytest

from tests.fixtures.stage_istio_release import staged_for_tests
from tests.support import get, helm, helm_env

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "tests" / "integration" / "playbooks"
RELEASE = staged_for_tests()
RETRIES = {"okemesh_api_retries": 10, "okemesh_api_retry_delay": 1}

pytestmark = pytest.mark.slow


class FaultUntilRetried:
    """Every request whose path contains `path` gets `code` until ansible's log shows a retry
    (then two more tries' worth of faults: the retry itself met the fault too)."""

    def __init__(self, sim, log: Path, *, path: str, code: int, retries_seen: int = 2, marker: str = "FAILED - RETRYING"):
        self.sim, self.log, self.retries_seen, self.marker = sim, log, retries_seen, marker
        self.cleared_after_retry = False
        self._done = threading.Event()
        sim.settings(fault_error_rate=1.0, fault_error_code=code, fault_paths=path, fault_retry_after=1)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(0.1):
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if text.count(self.marker) >= self.retries_seen:
                self.cleared_after_retry = True
                break
        self.sim.settings(fault_error_rate=0.0, fault_paths="")

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)


def run_with_fault(playbook, sim, tmp_path: Path, book: str, *, path: str, code: int, tags: str, retries_seen: int = 2,
                   marker: str = "FAILED - RETRYING", **extra):
    log = tmp_path / "ansible.log"
    env = {**helm_env(sim), "ANSIBLE_LOG_PATH": str(log)}
    fault = FaultUntilRetried(sim, log, path=path, code=code, retries_seen=retries_seen, marker=marker)
    try:
        result = playbook(PLAYBOOKS / book, tags=tags, env=env, extra_vars={
            "ansible_python_interpreter": sys.executable, "okemesh_kubeconfig": sim.kubeconfig, **RETRIES, **extra})
    finally:
        fault.stop()
    assert fault.cleared_after_retry, f"no task retried while the API answered {code}:\n{result}"
    return result


@pytest.mark.parametrize("code", [500, 429, 503])
def test_kubernetes_core_tasks_retry_transient_errors_and_converge(kubesim, playbook, tmp_path, code):
    result = run_with_fault(playbook, kubesim, tmp_path, "bookinfo.yml", path="/api/v1/namespaces/bookinfo", code=code,
                            tags="bookinfo_namespace")
    assert result.rc == 0, str(result)
    # the first read of the namespace met the fault and was retried (not failed)
    assert "FAILED - RETRYING: [localhost]: Bookinfo | read the namespace as it is" in result.stdout, str(result)
    ns = get(kubesim, "/api/v1/namespaces/bookinfo")
    assert ns["metadata"]["labels"]["istio-injection"] == "enabled"


def test_helm_tasks_retry_transient_errors_and_converge(kubesim, playbook, tmp_path):
    # helm keeps its releases in Secrets: every helm call fails while the fault lasts
    result = run_with_fault(playbook, kubesim, tmp_path, "istio.yml", path="/api/v1/namespaces/istio-system/secrets", code=500,
                            tags="istio_values,istio_base", istio_release_dir=str(RELEASE), istio_work_dir=str(tmp_path / "work"),
                            istio_wait_timeout=60, istio_wait_delay=1)
    assert result.rc == 0, str(result)
    assert "FAILED - RETRYING: [localhost]: Install or upgrade istio-base" in result.stdout, str(result)
    secrets = get(kubesim, "/api/v1/namespaces/istio-system/secrets?labelSelector=owner%3Dhelm,name%3Distio-base")["items"]
    assert [s["metadata"]["labels"]["status"] for s in secrets] == ["deployed"]


def istio_base_releases(sim) -> list[str]:
    """The status of every revision of istio-base helm keeps (its release Secrets), oldest first."""
    items = get(sim, "/api/v1/namespaces/istio-system/secrets?labelSelector=owner%3Dhelm,name%3Distio-base")["items"]
    return [s["metadata"]["labels"]["status"] for s in sorted(items, key=lambda s: int(s["metadata"]["labels"]["version"]))]


def istio_crds(sim) -> set[str]:
    return {c["metadata"]["name"] for c in get(sim, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]}


ISTIO_BASE_CRDS = {"virtualservices.networking.istio.io", "gateways.networking.istio.io", "peerauthentications.security.istio.io"}


def istio_role_vars(sim, tmp_path: Path, **extra) -> dict:
    return {"ansible_python_interpreter": sys.executable, "okemesh_kubeconfig": sim.kubeconfig, "istio_release_dir": str(RELEASE),
            "istio_work_dir": str(tmp_path / "work"), "istio_wait_timeout": 60, "istio_wait_delay": 1, **extra}


def test_a_release_left_failed_by_an_api_error_is_deployed_again(kubesim, playbook, tmp_path):
    # An interrupted run: helm has recorded the release when creating the CRDs (POST ...?fieldManager=helm)
    # fails, without retries: helm leaves the release "failed".
    role_vars = istio_role_vars(kubesim, tmp_path)
    kubesim.settings(fault_error_rate=1.0, fault_error_code=500, fault_paths="/customresourcedefinitions?fieldManager=")
    try:
        broken = playbook(PLAYBOOKS / "istio.yml", tags="istio_values,istio_base", env=helm_env(kubesim),
                          extra_vars={**role_vars, "okemesh_api_retries": 0, "okemesh_helm_retries": 1})
    finally:
        kubesim.settings(fault_error_rate=0.0, fault_paths="")
    assert broken.rc != 0
    assert "The Helm release istio-system/istio-base is not deployed after 1 rounds" in broken.stdout, str(broken)
    assert istio_base_releases(kubesim) == ["failed"], str(broken)
    # The next run: kubernetes.core.helm takes the failed release (same chart and values) for up to
    # date; the role's next round upgrades it, forced, and the CRDs are there. The release was failed
    # before this run touched it: it is upgraded, never uninstalled (revision 1 stays in the history).
    result = playbook(PLAYBOOKS / "istio.yml", tags="istio_values,istio_base", env=helm_env(kubesim), extra_vars=role_vars)
    assert result.rc == 0, str(result)
    assert "Helm release state after an interrupted helm run - istio-base round 1] ***" in result.stdout, str(result)
    assert re.search(r"TASK \[okemesh\.istio\.istio : Install or upgrade istio-base[^\]]*\] \*+\nchanged:", result.stdout), str(result)
    assert istio_base_releases(kubesim) == ["superseded", "deployed"], str(result)
    assert ISTIO_BASE_CRDS <= istio_crds(kubesim)
    # and the run after that changes nothing
    again = playbook(PLAYBOOKS / "istio.yml", tags="istio_values,istio_base", env=helm_env(kubesim), extra_vars=role_vars)
    assert again.rc == 0 and again.changed() == 0, str(again)


@pytest.mark.parametrize(
    ("fault_path", "recovery", "history"),
    [
        # A 500 creating the CRDs: helm leaves revision 1 "failed", and the round's retries find it up to
        # date (same chart and values). The next round upgrades it, forced; it does not uninstall it (the
        # uninstall would keep the CRDs, and the next install would have to adopt them: more API requests,
        # so less chance to get through).
        pytest.param("/customresourcedefinitions?fieldManager=", "skipping", ["superseded", "deployed"], id="left-failed-upgraded"),
        # A 500 on helm's last write (the release record turns "deployed"): the record stays
        # "pending-install", which every later helm call refuses ("another operation is in progress").
        # The next round uninstalls it and installs again.
        pytest.param("/secrets/sh.helm.release.v1.istio-base.v1", "changed", ["deployed"], id="left-pending-installed-again"),
    ],
)
def test_a_first_install_an_api_error_interrupted_is_recovered(kubesim, playbook, tmp_path, fault_path, recovery, history):
    # this play's own first install; the fault lasts until the role's next round starts
    result = run_with_fault(playbook, kubesim, tmp_path, "istio.yml", path=fault_path, code=500,
                            tags="istio_values,istio_base", retries_seen=1,
                            marker="Helm release state after an interrupted helm run - istio-base round 1",
                            **{k: v for k, v in istio_role_vars(kubesim, tmp_path).items()
                               if k not in ("ansible_python_interpreter", "okemesh_kubeconfig")})
    assert result.rc == 0, str(result)
    assert re.search(r"TASK \[okemesh\.istio\.istio : Recover a release an interrupted helm run of this play left behind - istio-base\] "
                     rf"\*+\n{recovery}:", result.stdout), str(result)
    assert istio_base_releases(kubesim) == history, str(result)
    assert ISTIO_BASE_CRDS <= istio_crds(kubesim)
    again = playbook(PLAYBOOKS / "istio.yml", tags="istio_values,istio_base", env=helm_env(kubesim),
                     extra_vars=istio_role_vars(kubesim, tmp_path))
    assert again.rc == 0 and again.changed() == 0, str(again)


def test_a_release_pending_before_the_run_is_left_alone(kubesim, playbook, tmp_path):
    # Another helm run is installing istio-base (here: one that lost its last write, as above): its
    # release is "pending-install" before the play starts. The role must not take it for its own.
    kubesim.settings(fault_error_rate=1.0, fault_error_code=500, fault_paths="/secrets/sh.helm.release.v1.istio-base.v1")
    try:
        helm(kubesim, "upgrade", "--install", "istio-base", str(RELEASE / "manifests" / "charts" / "base"), "--namespace", "istio-system",
             "--create-namespace", env=helm_env(kubesim))
    finally:
        kubesim.settings(fault_error_rate=0.0, fault_paths="")
    assert istio_base_releases(kubesim) == ["pending-install"]
    result = playbook(PLAYBOOKS / "istio.yml", tags="istio_values,istio_base", env=helm_env(kubesim),
                      extra_vars=istio_role_vars(kubesim, tmp_path, okemesh_api_retries=2, okemesh_api_retry_delay=0))
    assert result.rc != 0
    assert "another operation (install/upgrade/rollback) is in progress" in result.stdout, str(result)
    assert "RETRYING" not in result.stdout, str(result)
    assert "round 1" not in result.stdout, str(result)
    assert istio_base_releases(kubesim) == ["pending-install"], "the role touched another helm run's release"


def test_a_real_error_fails_at_once(kubesim, playbook):
    # 422 Invalid (a namespace name the API refuses): no retry, the task fails on its first answer
    result = playbook(PLAYBOOKS / "addons.yml", tags="addons_install", env=helm_env(kubesim),
                      extra_vars={"ansible_python_interpreter": sys.executable, "okemesh_kubeconfig": kubesim.kubeconfig,
                                  "istio_release_dir": str(RELEASE), "addons_namespace": "Bad_NS", **RETRIES})
    assert result.rc != 0
    assert result.failed() == 1
    assert "Create the add-ons namespace" in result.stdout
    assert "Invalid" in result.stdout and "Bad_NS" in result.stdout, str(result)
    assert "RETRYING" not in result.stdout, str(result)
