"""kubernetes.core modules (k8s, k8s_info, helm) against kubesim: a playbook converges, the second run changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubesim.testing import kubectl_json

HERE = Path(__file__).parent
REPO = HERE.parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.kubesim(behaviour=False)]


def _play(ks, playbook: Path, **extra) -> tuple[int, str]:
    env = ks.env({"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                  "ANSIBLE_LOCAL_TEMP": str(Path(ks.kubeconfig).parent / "ansible-tmp")})
    env.pop("K8S_AUTH_KUBECONFIG", None)
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
           "-e", json.dumps({"kubeconfig": ks.kubeconfig, "ansible_python_interpreter": sys.executable, **extra})]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _recap(out: str) -> dict[str, int]:
    line = next(x for x in out.splitlines() if x.startswith("localhost") and "ok=" in x)
    return {k: int(v) for k, v in (p.split("=") for p in line.split(":", 1)[1].split())}


def test_kubernetes_core_playbook_is_idempotent(kubesim):
    rc, out = _play(kubesim, HERE / "testdata" / "playbooks" / "k8s_twice.yml")
    assert rc == 0, out
    assert _recap(out)["changed"] == 5, out
    rc, out = _play(kubesim, HERE / "testdata" / "playbooks" / "k8s_twice.yml")
    assert rc == 0, out
    assert _recap(out)["changed"] == 0, out
    ns = kubectl_json(kubesim, "get", "ns", "ansible-demo")
    assert ns["metadata"]["labels"]["istio-injection"] == "enabled"
    dep = kubectl_json(kubesim, "get", "deploy", "web", "-n", "ansible-demo")
    assert dep["spec"]["replicas"] == 2 and dep["metadata"]["generation"] == 1
    widget = kubectl_json(kubesim, "get", "widgets.example.okemesh.io", "w1", "-n", "ansible-demo")
    assert widget["spec"] == {"size": 3}


def test_kubernetes_core_helm_module(kubesim):
    play = HERE / "testdata" / "playbooks" / "helm_release.yml"
    chart = str(HERE / "testdata" / "chart")
    rc, out = _play(kubesim, play, chart=chart)
    assert rc == 0, out
    assert _recap(out)["changed"] == 1, out
    rc, out = _play(kubesim, play, chart=chart)
    assert rc == 0 and _recap(out)["changed"] == 0, out
    assert kubectl_json(kubesim, "get", "cm", "demo-config", "-n", "helm-demo")["data"] == {"message": "from-ansible"}
