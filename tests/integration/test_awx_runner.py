"""site.yml run the way AWX / Automation Controller runs a job template: ansible-runner over a
private data directory, the cluster given ONLY by the K8S_AUTH_* variables of the "OpenShift or
Kubernetes API Bearer Token" credential, no kubeconfig file anywhere. Against kubesim, the local
Kubernetes API simulator (tests/kubesim).

Private data directory, as AWX lays it out:
  project/                     the project checkout (this collection: symlinks to the repo files)
  requirements_collections/    collections of the project (okemesh.istio -> project/)
  inventory/hosts              an executable inventory script printing JSON (one host per cluster)
  env/extravars env/envvars env/settings
  <CA file>                    written by the credential's injector (K8S_AUTH_SSL_CA_CERT)
  artifacts/<ident>/           written by ansible-runner
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

ansible_runner = pytest.importorskip("ansible_runner")

from tests.fixtures.stage_istio_release import staged_for_tests  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HOST = "oke-sim-1"
PROJECT_FILES = ["galaxy.yml", "meta", "plugins", "roles", "playbooks", "site.yml"]

pytestmark = pytest.mark.slow


def private_data_dir(root: Path, sim, *, envvars: dict[str, str] | None = None, extravars: dict | None = None) -> Path:
    """Lay out a private data directory as AWX does for a job of the site.yml job template."""
    pdd = root / "pdd"
    (pdd / "project").mkdir(parents=True)
    for name in PROJECT_FILES:
        (pdd / "project" / name).symlink_to(REPO / name)
    coll = pdd / "requirements_collections" / "ansible_collections" / "okemesh"
    coll.mkdir(parents=True)
    (coll / "istio").symlink_to(pdd / "project")

    # the Bearer Token credential's injector writes the CA data to a 0600 file in the private data dir
    fd = os.open(pdd / "tmp_k8s_ca", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(Path(sim.ca).read_text())

    hostvars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "okemesh_simulator": True,
        "istio_release_dir": str(staged_for_tests()),
        "gateway_lb_poll_interval": 0.5,
        "gateway_verify_delay": 1,
    }
    inventory = {"all": {"children": ["okemesh_clusters"]},
                 "okemesh_clusters": {"hosts": [HOST]},
                 "_meta": {"hostvars": {HOST: hostvars}}}
    script = pdd / "inventory" / "hosts"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps({inventory!r}))\n")
    script.chmod(0o700)

    home, tmp = root / "home", root / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {
        "K8S_AUTH_HOST": sim.url,
        "K8S_AUTH_API_KEY": sim.token,
        "K8S_AUTH_VERIFY_SSL": "True",
        "K8S_AUTH_SSL_CA_CERT": str(pdd / "tmp_k8s_ca"),
        "HOME": str(home),  # empty: no ~/.kube/config, no ~/.ansible.cfg
        "TMPDIR": str(tmp),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_COLLECTIONS_PATH": str(pdd / "requirements_collections"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }
    env.update(envvars or {})
    (pdd / "env").mkdir()
    (pdd / "env" / "envvars").write_text(json.dumps(env))
    # survey answers
    (pdd / "env" / "extravars").write_text(json.dumps(extravars if extravars is not None else {
        "istio_version": "1.30.0", "istio_profile": "default", "bookinfo_namespace": "bookinfo",
        "bookinfo_loadgen_requests": 20, "gateway_lb_timeout": 60}))
    (pdd / "env" / "settings").write_text(json.dumps({"job_timeout": 1500, "idle_timeout": 600,
                                                       "suppress_ansible_output": True}))
    return pdd


def run(pdd: Path, ident: str):
    return ansible_runner.run(private_data_dir=str(pdd), playbook="site.yml", ident=ident, quiet=True)


@pytest.fixture
def clean_environ(monkeypatch):
    """Nothing in the test process points at a cluster or a configuration: the job's env only."""
    for var in list(os.environ):
        if var == "KUBECONFIG" or var.startswith(("K8S_AUTH_", "ANSIBLE_", "OKEMESH_", "HELM_", "OCI_")):
            monkeypatch.delenv(var)


def task_results(runner, task: str, event: str = "runner_on_ok") -> list[dict]:
    return [e["event_data"].get("res", {}) for e in runner.events
            if e.get("event") == event and e["event_data"].get("task") == task]


def stats_data(runner) -> dict:
    stats = [e for e in runner.events if e.get("event") == "playbook_on_stats"]
    assert len(stats) == 1
    return stats[0]["event_data"].get("artifact_data", {})


def files_with(root: Path, needle: str) -> list[str]:
    hits = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and needle.encode() in path.read_bytes():
            hits.append(str(path.relative_to(root)))
    return hits


def assert_no_token_in_artifacts(pdd: Path, ident: str, token: str) -> None:
    """No job event, stdout, fact cache or stats file holds the token. ansible-runner itself
    records the environment it launched ansible-playbook with in artifacts/<ident>/command (0600,
    every runner job, AWX's too: AWX removes the private data directory after the job and stores
    the environment redacted); the token may be there, as the K8S_AUTH_API_KEY it was given, and
    nowhere else."""
    artifacts = pdd / "artifacts"
    hits = files_with(artifacts / ident, token)
    assert hits in ([], ["command"]), hits
    command = artifacts / ident / "command"
    assert stat.S_IMODE(command.stat().st_mode) == 0o600
    record = json.loads(command.read_text())
    assert record["env"]["K8S_AUTH_API_KEY"] == token
    del record["env"]["K8S_AUTH_API_KEY"]
    assert token not in json.dumps(record)
    assert "KUBECONFIG" not in record["env"]
    events = list((artifacts / ident / "job_events").glob("*.json"))
    assert len(events) > 100
    assert (artifacts / ident / "stdout").stat().st_size > 0


def test_site_through_ansible_runner_with_bearer_token_credential(kubesim, tmp_path, clean_environ):
    pdd = private_data_dir(tmp_path, kubesim)
    home, tmp = tmp_path / "home", tmp_path / "tmp"

    first = run(pdd, "1")
    assert first.status == "successful", (pdd / "artifacts/1/stdout").read_text()[-8000:]
    assert first.rc == 0
    assert first.stats["changed"].get(HOST, 0) > 0
    assert first.stats["failures"] == {}

    # the cluster state, read back
    status, ns = kubesim.request("GET", "/api/v1/namespaces/bookinfo")
    assert status == 200 and ns["metadata"]["labels"]["istio-injection"] == "enabled"
    status, svc = kubesim.request("GET", "/api/v1/namespaces/istio-ingress/services/istio-ingress")
    assert status == 200, svc
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    status, _ = kubesim.request("GET", "/apis/apps/v1/namespaces/istio-system/deployments/istiod")
    assert status == 200

    # helm and kubectl went through a temporary kubeconfig: private, under TMPDIR, removed at the end
    checked = task_results(first, "K8s auth | check the temporary directory and kubeconfig are private", "runner_item_on_ok")
    assert len(checked) == 2, "prereqs did not write a kubeconfig from K8S_AUTH_*"
    modes = {Path(r["stat"]["path"]).name: r["stat"]["mode"] for r in checked}
    kdir = Path(checked[0]["stat"]["path"])
    assert kdir.parent == tmp and kdir.name.startswith("okemesh-k8s-auth.")
    assert modes == {kdir.name: "0700", "kubeconfig": "0600"}
    assert list(tmp.glob("okemesh-k8s-auth.*")) == []
    assert not (home / ".kube" / "config").exists()  # (kubectl keeps only its discovery cache there)
    assert files_with(home, kubesim.token) == [] and files_with(tmp, kubesim.token) == []
    written = task_results(first, "K8s auth | write the temporary kubeconfig from K8S_AUTH_*")
    assert written and written[0].get("censored"), written
    # helm's release records are in the cluster: the helm binary reached it
    status, secrets = kubesim.request("GET", "/api/v1/namespaces/istio-system/secrets?labelSelector=owner%3Dhelm")
    assert status == 200 and {s["metadata"]["labels"]["name"] for s in secrets["items"]} >= {"istio-base", "istiod"}

    # set_stats for the next workflow node
    cluster = stats_data(first)["okemesh_clusters"][HOST]
    assert cluster["gateway_url"] == f"http://{ip}"
    assert cluster["bookinfo_url"] == f"http://{ip}/productpage"
    assert cluster["istio_version"] == "1.30.0"
    assert cluster["istio_revision"] == ""
    assert cluster["simulator"] is True
    assert cluster["injection_check"] == {"verdict": "ok", "errors": 0, "warnings": 0, "pods": 6}
    names = {d["name"]: d for d in cluster["dashboards"]}
    assert set(names) >= {"grafana", "prometheus", "jaeger", "kiali"}
    assert names["grafana"]["command"] == "kubectl -n istio-system port-forward svc/grafana 3000:3000"
    assert names["grafana"]["url"] == "http://localhost:3000"
    assert "telemetry_verdict" not in cluster and "mesh_graph_path" not in cluster
    assert_no_token_in_artifacts(pdd, "1", kubesim.token)

    second = run(pdd, "2")
    assert second.status == "successful", (pdd / "artifacts/2/stdout").read_text()[-8000:]
    assert second.stats["changed"] == {} or set(second.stats["changed"].values()) == {0}, second.stats
    assert second.stats["ok"][HOST] > 0
    assert stats_data(second)["okemesh_clusters"][HOST]["gateway_url"] == f"http://{ip}"
    assert list(tmp.glob("okemesh-k8s-auth.*")) == []
    assert_no_token_in_artifacts(pdd, "2", kubesim.token)
    shutil.rmtree(pdd / "artifacts")
