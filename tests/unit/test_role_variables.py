"""Each role's public variables: defaults/main.yml and meta/argument_specs.yml name the same
variables, every variable carries the role prefix, and each default has a comment; and every role
speaks the same dialect (skeleton, tags, tool and version names, shared data, API retries)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ["prereqs", "istio", "addons", "bookinfo", "gateway"]
_COLLECTIONS = ROOT / ".collections"
if str(_COLLECTIONS) not in sys.path:  # the collection is importable as ansible_collections.okemesh.istio
    sys.path.insert(0, str(_COLLECTIONS))
TOP_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):")


def _defaults(role: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}


def _spec_options(role: str) -> dict:
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"].get("options", {})


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_name_the_same_variables(role):
    defaults, options = set(_defaults(role)), set(_spec_options(role))
    assert defaults, f"roles/{role}/defaults/main.yml defines no variables"
    assert defaults - options == set(), f"{role}: in defaults but not in meta/argument_specs.yml"
    assert options - defaults == set(), f"{role}: in meta/argument_specs.yml but without a default"


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_carry_the_role_prefix(role):
    bad = [name for name in _spec_options(role) if not name.startswith(f"{role}_")]
    assert bad == [], f"{role}: public variables must start with '{role}_'"


@pytest.mark.parametrize("role", ROLES)
def test_every_default_has_a_comment_and_a_description(role):
    lines = (ROOT / "roles" / role / "defaults" / "main.yml").read_text().splitlines()
    uncommented = []
    for i, line in enumerate(lines):
        m = TOP_KEY.match(line)
        if m and not (i > 0 and lines[i - 1].lstrip().startswith("#")) and "#" not in line.split(":", 1)[1]:
            uncommented.append(m.group(1))
    assert uncommented == [], f"{role}: defaults without a comment line"
    undocumented = [n for n, o in _spec_options(role).items() if not (o or {}).get("description")]
    assert undocumented == [], f"{role}: argument_specs options without a description"


# ---------------------------------------------------------------------------------------
# One dialect: the same skeleton, names and shared data in every role
# ---------------------------------------------------------------------------------------
def _tasks(role: str) -> dict[str, list]:
    return {p.name: yaml.safe_load(p.read_text()) or [] for p in sorted((ROOT / "roles" / role / "tasks").glob("*.yml"))}


def _walk(tasks: list):
    """Every task, also those inside blocks."""
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _walk(task.get(key))


def _main_imports(role: str) -> list[dict]:
    return [t for t in _walk(_tasks(role)["main.yml"]) if "ansible.builtin.import_tasks" in t]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_the_same_skeleton(role):
    base = ROOT / "roles" / role
    for path in ("README.md", "meta/main.yml", "meta/argument_specs.yml", "defaults/main.yml", "vars/main.yml",
                 "tasks/main.yml", "tasks/preflight.yml"):
        assert (base / path).is_file(), f"roles/{role}/{path} is missing"
    galaxy = yaml.safe_load((base / "meta/main.yml").read_text())["galaxy_info"]
    assert galaxy["role_name"] == role and galaxy["namespace"] == "okemesh"
    spec = yaml.safe_load((base / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]
    assert spec.get("short_description") and spec.get("description") and spec.get("author")


@pytest.mark.parametrize("role", ROLES)
def test_readme_has_an_example_that_uses_the_role(role):
    text = (ROOT / "roles" / role / "README.md").read_text()
    assert text.startswith(f"# okemesh.istio.{role}\n")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert any(f"okemesh.istio.{role}" in b for b in blocks), f"{role}: README has no ```yaml example using the role"
    for block in blocks:
        yaml.safe_load(block)  # the example is valid YAML


@pytest.mark.parametrize("role", ROLES)
def test_preflight_runs_first_under_tag_always_and_phases_are_tagged(role):
    imports = _main_imports(role)
    assert imports[0]["ansible.builtin.import_tasks"] == "preflight.yml"
    assert {f"{role}_preflight", "always"} <= set(imports[0]["tags"])
    for imp in imports[1:]:
        assert any(t.startswith(f"{role}_") for t in imp.get("tags", [])), f"{role}: {imp['name']} has no {role}_* tag"


@pytest.mark.parametrize("role", ROLES)
def test_tool_paths_are_named_binary_and_default_from_the_prereqs_facts(role):
    defaults = _defaults(role)
    bad = [n for n in defaults if re.fullmatch(rf"{role}_(kubectl|helm|oci)", n)]
    assert bad == [], f"{role}: name tool paths {role}_<tool>_binary"
    for name, value in defaults.items():
        m = re.fullmatch(rf"{role}_(kubectl|helm)_binary", name)
        if m:
            assert f"okemesh_{m.group(1)}_binary" in str(value), f"{name} must default from okemesh_{m.group(1)}_binary"
    if role == "prereqs":
        return
    # the facts prereqs publishes are read: the kubectl/helm binaries, and the oci binary's directory on PATH
    text = "\n".join((ROOT / "roles" / role / d / "main.yml").read_text() for d in ("defaults", "vars"))
    assert "okemesh_oci_binary" in text
    assert f'environment: "{{{{ _{role}_environment }}}}"' in (ROOT / "roles" / role / "tasks" / "main.yml").read_text()


def test_every_published_fact_is_read_by_a_role():
    tools = (ROOT / "roles" / "prereqs" / "tasks" / "tools.yml").read_text()
    published = set(re.findall(r"^\s+(okemesh_\w+_binary):", tools, re.M))
    assert published == {"okemesh_kubectl_binary", "okemesh_helm_binary", "okemesh_oci_binary"}
    readers = {
        fact: [r for r in ROLES if r != "prereqs" and fact in "".join(
            p.read_text() for p in (ROOT / "roles" / r).rglob("*.yml"))]
        for fact in published
    }
    assert all(readers.values()), readers


@pytest.mark.parametrize("role", ROLES)
def test_version_variable_is_role_istio_version_from_okemesh_istio_version(role):
    defaults = _defaults(role)
    name = "istio_version" if role == "istio" else f"{role}_istio_version"
    assert name in defaults, f"{role}: the Istio version variable is {name}"
    assert f"{role}_version" not in defaults or role == "istio"
    assert "okemesh_istio_version" in str(defaults[name])
    if role != "istio":
        # the control plane's istio_version first (it follows okemesh_istio_version), then okemesh_istio_version
        assert re.search(r"\bistio_version\)? \| default\(okemesh_istio_version\)", str(defaults[name]))
    # the built-in default is the collection's one, not a copy
    assert "'default_istio_version' | okemesh.istio.support" in str(defaults[name])


@pytest.mark.parametrize("role", ROLES)
def test_api_retries_default_from_the_collection_wide_variables(role):
    defaults, options = _defaults(role), _spec_options(role)
    for var, wide in ((f"{role}_api_retries", "okemesh_api_retries"), (f"{role}_api_retry_delay", "okemesh_api_retry_delay")):
        assert wide in str(defaults[var])
        assert options[var]["type"] == "int"


@pytest.mark.parametrize("role", ROLES)
def test_every_kubernetes_core_task_retries_transient_errors_only(role):
    missing = []
    for fname, tasks in _tasks(role).items():
        for task in _walk(tasks):
            module = next((k for k in task if k.startswith("kubernetes.core.")), None)
            kubectl = "ansible.builtin.command" in task and "kubectl" in str(task["ansible.builtin.command"])
            if not (module or kubectl):
                continue
            until = str(task.get("until", ""))
            register = task.get("register")
            transient = register and f"{register} | okemesh.istio.api_transient" in until
            poll = until and task.get("failed_when") is False  # a bounded readiness poll: errors are polls too
            if not (transient or poll) or (transient and f"{role}_api_retries" not in str(task.get("retries"))):
                missing.append(f"{fname}: {task.get('name')}")
            if transient and task.get("failed_when") is not False:
                # a real error must end the retries at once
                assert until.startswith(f"{register} is not failed or not ") or (
                    f"({register} is failed and not ({register} | okemesh.istio.api_transient))" in until
                ), f"{fname}: {task.get('name')}"
    assert missing == [], f"{role}: kubernetes.core tasks without a transient-error retry"


def test_the_support_matrix_and_oke_lists_live_in_one_place():
    from ansible_collections.okemesh.istio.plugins.module_utils import _support

    for role in ROLES:
        for path in (ROOT / "roles" / role).rglob("*.yml"):
            text = path.read_text()
            assert not re.search(r'"1\.\d+":\s*\{\s*min:', text), f"{path}: a copy of the support matrix"
            assert "[PUBLIC_ENDPOINT, PRIVATE_ENDPOINT" not in text or path.name == "argument_specs.yml", path
            assert "[api_key, instance_principal" not in text or path.name == "argument_specs.yml", path
    # argument_specs keep the choices (ansible-doc, AWX surveys); they must equal the shared lists
    options = _spec_options("prereqs")
    assert options["prereqs_oke_endpoint"]["choices"] == _support.OKE_ENDPOINTS
    assert options["prereqs_oci_auth_type"]["choices"] == _support.OCI_AUTH_TYPES
    assert options["prereqs_oke_credential"]["choices"] == _support.OKE_CREDENTIALS


@pytest.mark.parametrize("role", ROLES)
def test_renamed_variables_keep_working_and_warn(role):
    renamed = (yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text()) or {}).get(f"_{role}_renamed", {})
    defaults = _defaults(role)
    for old, new in renamed.items():
        assert old not in defaults and old not in _spec_options(role), f"{old} must not have a default any more"
        assert str(defaults[new]).lstrip("{ ").startswith(f"{old} | default("), f"{new} must default from {old}"
    if renamed:
        preflight = (ROOT / "roles" / role / "tasks" / "preflight.yml").read_text()
        assert f"_{role}_renamed | okemesh.istio.deprecated_names" in preflight


def test_the_expected_renames_are_in_place():
    renamed = {r: (yaml.safe_load((ROOT / "roles" / r / "vars" / "main.yml").read_text()) or {}).get(f"_{r}_renamed", {})
               for r in ROLES}
    assert renamed["gateway"] == {"gateway_version": "gateway_istio_version", "gateway_kubectl": "gateway_kubectl_binary"}
    assert renamed["bookinfo"] == {"bookinfo_kubectl": "bookinfo_kubectl_binary"}


def test_molecule_scenarios_share_one_verify_playbook():
    scenarios = ROOT / "extensions" / "molecule"  # where molecule looks for a collection's scenarios
    shared = scenarios / "shared" / "verify.yml"
    assert shared.is_file()
    assert not (ROOT / "molecule").exists()
    for scenario in ("default", "kind"):
        assert not (scenarios / scenario / "verify.yml").exists()
        config = yaml.safe_load((scenarios / scenario / "molecule.yml").read_text())
        assert (scenarios / scenario / config["provisioner"]["playbooks"]["verify"]).resolve() == shared


@pytest.mark.parametrize("role", ["istio", "gateway"])
def test_helm_retries_default_from_the_collection_wide_variable(role):
    defaults, options = _defaults(role), _spec_options(role)
    assert "okemesh_helm_retries" in str(defaults[f"{role}_helm_retries"])
    assert "default_helm_retries" in str(defaults[f"{role}_helm_retries"])
    assert options[f"{role}_helm_retries"]["type"] == "int"


@pytest.mark.parametrize("role", ["istio", "gateway"])
def test_helm_installs_go_through_the_rounds_that_recover_an_interrupted_release(role):
    # every helm install/upgrade of the role is the one in the istio role's helm_release.yml (the gateway
    # role includes it with its own values), which is deployed again (forced when "failed":
    # kubernetes.core.helm takes a failed release with unchanged chart and values for up to date) in
    # bounded rounds while the release is not deployed
    tasks = _tasks(role)
    for fname, body in tasks.items():
        for task in _walk(body):
            helm = task.get("kubernetes.core.helm")
            if helm and helm.get("state") != "absent":
                assert (role, fname) == ("istio", "helm_release.yml"), f"{fname}: {task['name']} installs outside helm_release.yml"
    if role == "gateway":
        includes = [t for body in tasks.values() for t in _walk(body) if "ansible.builtin.include_role" in t]
        shared = [t for t in includes if t["ansible.builtin.include_role"].get("tasks_from") == "helm_release.yml"]
        assert [t["ansible.builtin.include_role"]["name"] for t in shared] == ["okemesh.istio.istio"]
        assert not (ROOT / "roles" / "gateway" / "tasks" / "helm_release.yml").exists(), "one copy of the rounds"
        block = next(t for body in tasks.values() for t in _walk(body) if "block" in t and "__istio_helm" in (t.get("vars") or {}))
        assert block["vars"]["istio_helm_retries"] == "{{ gateway_helm_retries }}"
        assert block["vars"]["istio_api_retries"] == "{{ gateway_api_retries }}"
        return
    rounds = list(_walk(tasks["helm_release.yml"]))
    install = next(t for t in rounds if "kubernetes.core.helm" in t)
    # after the first round every try deploys: forced unless the round found the release deployed
    force = install["kubernetes.core.helm"]["force"]
    assert "__istio_helm_round | int > 0" in force and "!= 'deployed'" in force
    again = next(t for t in rounds if "ansible.builtin.set_fact" in t and "__istio_helm_again" in t["ansible.builtin.set_fact"])
    condition = again["ansible.builtin.set_fact"]["__istio_helm_again"]
    assert "!= 'deployed'" in condition and "< (istio_helm_retries | int)" in condition
    assert any((t.get("ansible.builtin.include_tasks") or {}).get("file") == "helm_release.yml" for t in rounds)
    recover = next(t for t in rounds if "ansible.builtin.command" in t)
    assert "__istio_helm_round | int > 0" in recover["when"], "a release pending before the play is never touched"
