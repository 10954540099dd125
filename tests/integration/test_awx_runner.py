"""site.yml run the way AWX / Automation Controller runs a job template: ansible-runner over a
private data directory, the cluster given ONLY by the K8S_AUTH_* variables of the "OpenShift or
Kubernetes API Bearer Token" credential, no kubeconfig file anywhere. Against kubesim, the local
Kubernetes API simulator (tools/kubesim).

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
import time
from pathlib import Path

import ansible_runner  # pinned in requirements-dev.txt: what AWX runs a job with
import pytest
import yaml
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tests.fixtures.stage_istio_release import staged_for_tests
from tests.oci_stub import pytest_plugin as _stub_fixtures
from tests.oci_stub.identity import CLUSTER

oci_stub = _stub_fixtures.oci_stub
oci_identity = _stub_fixtures.oci_identity

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HOST = "oke-sim-1"
PROJECT_FILES = ["galaxy.yml", "meta", "plugins", "roles", "playbooks", "site.yml"]

pytestmark = pytest.mark.slow


def private_data_dir(root: Path, sim, *, envvars: dict[str, str] | None = None, extravars: dict | None = None,
                     hosts: tuple[str, ...] = (HOST,)) -> Path:
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
                 "okemesh_clusters": {"hosts": list(hosts)},
                 "_meta": {"hostvars": dict.fromkeys(hosts, hostvars)}}
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
    settings = {"job_timeout": 1500, "idle_timeout": 600, "suppress_ansible_output": True}
    (pdd / "env" / "settings").write_text(json.dumps(settings))
    return pdd


def run(pdd: Path, ident: str, **kwargs):
    return ansible_runner.run(private_data_dir=str(pdd), playbook="site.yml", ident=ident, quiet=True, **kwargs)


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
    assert hits in ([], ["command"]), str(hits)
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
    assert status == 200, str(svc)
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    status, istiod = kubesim.request("GET", "/apis/apps/v1/namespaces/istio-system/deployments/istiod")
    assert status == 200 and istiod["metadata"]["name"] == "istiod"

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
    assert written and written[0].get("censored"), str(written)
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
    assert cluster["telemetry_verdict"] == "passed"
    assert cluster["mesh_graph_path"].endswith("/mesh.svg")
    assert_no_token_in_artifacts(pdd, "1", kubesim.token)

    second = run(pdd, "2")
    assert second.status == "successful", (pdd / "artifacts/2/stdout").read_text()[-8000:]
    assert second.stats["changed"] == {} or set(second.stats["changed"].values()) == {0}, second.stats
    assert second.stats["ok"][HOST] > 0
    assert stats_data(second)["okemesh_clusters"][HOST]["gateway_url"] == f"http://{ip}"
    assert list(tmp.glob("okemesh-k8s-auth.*")) == []
    assert_no_token_in_artifacts(pdd, "2", kubesim.token)
    shutil.rmtree(pdd / "artifacts")


def oci_credential_files(pdd: Path, values: dict[str, str]) -> dict[str, str]:
    """Inject the okemesh OCI credential type (awx/credential-types/oci.yml) as the controller does:
    one private file per template, their paths in tower.filename; returns its environment."""
    ctype = yaml.safe_load((REPO / "awx/credential-types/oci.yml").read_text())
    jinja = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    names = [k.split(".", 1)[1] for k in ctype["injectors"]["file"]]
    filename = type("filename", (), {n: str(pdd / f"tmp_oci_{n}") for n in names})
    namespace = {f["id"]: values.get(f["id"], "") for f in ctype["inputs"]["fields"]}
    namespace["tower"] = type("tower", (), {"filename": filename})
    for key, template in ctype["injectors"]["file"].items():
        path = pdd / f"tmp_oci_{key.split('.', 1)[1]}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(jinja.from_string(template).render(namespace))
    return {var: jinja.from_string(t).render(namespace) for var, t in ctype["injectors"]["env"].items()}


OCI_VALUES = {"user": "ocid1.user.oc1..aaaaaaaaexampleuser", "tenancy": "ocid1.tenancy.oc1..aaaaaaaaexampletenancy",
              "fingerprint": "20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34", "region": "eu-frankfurt-1",
              "private_key": "", "passphrase": ""}
CLUSTER_OCID = "ocid1.cluster.oc1.eu-frankfurt-1.aaaaaaaaexamplecluster"


@pytest.mark.parametrize(("case", "names"), [
    ("no-token", ["K8S_AUTH_API_KEY"]),
    ("no-ca", ["K8S_AUTH_SSL_CA_CERT", "K8S_AUTH_VERIFY_SSL"]),
    ("ca-missing", ["K8S_AUTH_SSL_CA_CERT", "is not a readable file"]),
    ("not-a-url", ["K8S_AUTH_HOST is not a URL"]),
    ("both-clusters", ["prereqs_cluster_id is set too", "K8S_AUTH_HOST"]),
    ("two-hosts", ["the play targets 2 inventory hosts (clusters) and K8S_AUTH_HOST gives one cluster"]),
    ("survey-choice", ["value of istio_profile must be one of: default, ambient, got: sidecar",
                       "value of gateway_oci_lb_type must be one of: , lb, nlb, got: alb"]),
    ("oci-no-key", ["key_file", "is empty (no private key)", "prereqs_oci_config_file"]),
    ("oci-no-key-line", ["key_file (the private key) is missing in"]),
])
def test_bad_input_fails_in_preflight_naming_the_variable_before_any_change(kubesim, tmp_path, clean_environ, case, names):
    envvars: dict[str, str] = {}
    extravars = {"istio_version": "1.30.0"}
    if case == "no-token":
        envvars["K8S_AUTH_API_KEY"] = ""
    elif case == "no-ca":
        envvars["K8S_AUTH_SSL_CA_CERT"] = ""
    elif case == "ca-missing":
        envvars["K8S_AUTH_SSL_CA_CERT"] = str(tmp_path / "nowhere.crt")
    elif case == "not-a-url":
        envvars["K8S_AUTH_HOST"] = "127.0.0.1:6443"
    elif case == "both-clusters":
        extravars["prereqs_cluster_id"] = CLUSTER_OCID
    elif case == "survey-choice":
        extravars.update(istio_profile="sidecar", gateway_oci_lb_type="alb")
    hosts = (HOST, "oke-sim-2") if case == "two-hosts" else (HOST,)
    pdd = private_data_dir(tmp_path, kubesim, envvars=envvars, extravars=extravars, hosts=hosts)
    if case.startswith("oci-"):
        # an OKE cluster with the OCI credential attached, and no bearer token credential
        env = oci_credential_files(pdd, OCI_VALUES)
        if case == "oci-no-key-line":
            config = pdd / "tmp_oci_config"
            config.write_text("".join(line + "\n" for line in config.read_text().splitlines() if not line.startswith("key_file")))
        envvars = {**env, "K8S_AUTH_HOST": "", "K8S_AUTH_API_KEY": "", "K8S_AUTH_SSL_CA_CERT": ""}
        current = json.loads((pdd / "env" / "envvars").read_text())
        (pdd / "env" / "envvars").write_text(json.dumps({**current, **envvars}))
        (pdd / "env" / "extravars").write_text(json.dumps({**extravars, "prereqs_cluster_id": CLUSTER_OCID}))

    result = run(pdd, "1")
    stdout = " ".join((pdd / "artifacts/1/stdout").read_text().split())
    assert result.status == "failed", stdout[-3000:]
    for name in names:
        assert name in stdout, stdout[-3000:]
    assert "Nothing was changed" in stdout
    failed = [e["event_data"]["task"] for e in result.events if e.get("event") == "runner_on_failed"]
    assert len(failed) == len(hosts) and failed[0].startswith(("K8s auth |", "Play arguments |", "OCI credential |")), str(failed)
    assert result.stats["changed"] == {}, result.stats
    assert list((tmp_path / "tmp").glob("okemesh-k8s-auth.*")) == []
    status, namespaces = kubesim.request("GET", "/api/v1/namespaces")
    assert status == 200
    assert {n["metadata"]["name"] for n in namespaces["items"]} & {"istio-system", "bookinfo", "istio-ingress"} == set()
    assert files_with(pdd / "artifacts" / "1", kubesim.token) in ([], ["command"])


def test_oci_credential_type_gives_prereqs_the_oke_kubeconfig(kubesim, tmp_path, clean_environ, oci_stub, oci_identity):
    """The okemesh OCI credential, injected as the controller does, is what prereqs signs with:
    the OKE kubeconfig comes from the (stub) Container Engine API with no other OCI setting."""
    dest = tmp_path / "oke" / "kubeconfig"
    pdd = private_data_dir(tmp_path, kubesim, extravars={
        "prereqs_cluster_id": CLUSTER, "prereqs_kubeconfig": str(dest), "prereqs_oci_service_endpoint": oci_stub.url})
    values = {"user": oci_identity.user, "tenancy": oci_identity.tenancy, "fingerprint": oci_identity.fingerprint,
              "region": oci_identity.region, "private_key": oci_identity.key_file.read_text(), "passphrase": ""}
    env = oci_credential_files(pdd, values)
    current = json.loads((pdd / "env" / "envvars").read_text())
    (pdd / "env" / "envvars").write_text(json.dumps(
        {**current, **env, "K8S_AUTH_HOST": "", "K8S_AUTH_API_KEY": "", "K8S_AUTH_SSL_CA_CERT": ""}))
    # the prereqs part of site.yml (the OKE endpoint of the stub is not a cluster)
    result = run(pdd, "1", tags="prereqs", skip_tags="istio,addons,bookinfo,gateway,prereqs_api")
    stdout = (pdd / "artifacts/1/stdout").read_text()
    assert result.status == "successful", stdout[-6000:]
    doc = yaml.safe_load(dest.read_text())
    assert doc["clusters"][0]["cluster"]["server"] == "https://203.0.113.10:6443"
    # the exec credential (oci ce cluster generate-token) reads the injected config file too
    assert doc["users"][0]["user"]["exec"]["args"][-2:] == ["--config-file", env["OCI_CONFIG_FILE"]]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert [r["status"] for r in oci_stub.requests] == [200]
    assert files_with(pdd / "artifacts" / "1", values["private_key"].splitlines()[1]) == []


def test_temporary_kubeconfig_is_removed_when_the_run_fails(kubesim, tmp_path, clean_environ):
    """A wrong token fails the API check after the kubeconfig was written: no further play runs
    for the failed cluster, and the watcher started with the directory removes it."""
    wrong = "0" * 40
    pdd = private_data_dir(tmp_path, kubesim, envvars={"K8S_AUTH_API_KEY": wrong})
    result = run(pdd, "1")
    assert result.status == "failed"
    failed = [e["event_data"] for e in result.events if e.get("event") == "runner_on_failed"]
    assert [f["task"] for f in failed] == ["API | ask the cluster for its version"]
    assert "401" in json.dumps(failed[0]["res"]) or "Unauthorized" in json.dumps(failed[0]["res"])
    written = task_results(result, "K8s auth | write the temporary kubeconfig from K8S_AUTH_*")
    assert written and written[0].get("censored")
    deadline = time.monotonic() + 30
    while list((tmp_path / "tmp").glob("okemesh-k8s-auth.*")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert list((tmp_path / "tmp").glob("okemesh-k8s-auth.*")) == []
    assert files_with(pdd / "artifacts" / "1", wrong) in ([], ["command"])
    assert files_with(tmp_path / "home", wrong) == []
