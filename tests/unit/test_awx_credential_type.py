"""awx/credential-types/oci.yml: the AWX / Automation Controller custom credential type for an OCI
API key. Its structure is checked against the controller's rules for credential types (written
from AWX's CredentialTypeInputField / CredentialTypeInjectorField validation), and its injectors
are rendered as the controller renders them (a sandboxed Jinja2 environment, one private file per
`template.<name>`, `tower.filename.<name>` for their paths); the OCI Python SDK then reads the
injected config and key."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import oci
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]
CRED = ROOT / "awx" / "credential-types" / "oci.yml"
NAME = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*$")
FILE_KEY = re.compile(r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$")
FIELD_KEYS = {"id", "label", "type", "format", "choices", "help_text", "multiline", "secret", "ask_at_runtime", "default"}
# variables the controller sets itself or that steer the job; a credential may not inject them
ENV_BLOCKLIST = {"VIRTUAL_ENV", "PATH", "PYTHONPATH", "JOB_ID", "INVENTORY_ID", "INVENTORY_SOURCE_ID",
                 "INVENTORY_UPDATE_ID", "AD_HOC_COMMAND_ID", "REST_API_URL", "REST_API_TOKEN", "MAX_EVENT_RES",
                 "CALLBACK_QUEUE", "CALLBACK_CONNECTION", "CACHE", "JOB_CALLBACK_DEBUG", "INVENTORY_HOSTVARS",
                 "AWX_HOST", "PROJECT_REVISION", "SUPERVISOR_CONFIG_PATH"}


def credential_type() -> dict:
    return yaml.safe_load(CRED.read_text())


def structure_errors(ct: dict) -> list[str]:
    errors = []
    for key in ct:
        if key not in {"name", "description", "kind", "inputs", "injectors"}:
            errors.append(f"unknown top-level key {key}")
    if not isinstance(ct.get("name"), str) or not ct["name"]:
        errors.append("name must be a non-empty string")
    if ct.get("kind") not in ("cloud", "net"):
        errors.append("kind of a custom credential type must be cloud or net")
    inputs = ct.get("inputs") or {}
    if set(inputs) - {"fields", "required"}:
        errors.append(f"unknown inputs keys {sorted(set(inputs) - {'fields', 'required'})}")
    ids: list[str] = []
    for field in inputs.get("fields", []):
        if set(field) - FIELD_KEYS:
            errors.append(f"field {field.get('id')}: unknown keys {sorted(set(field) - FIELD_KEYS)}")
        if not {"id", "label"} <= set(field):
            errors.append(f"field {field}: id and label are required")
            continue
        if not NAME.match(field["id"]) or field["id"] == "tower":
            errors.append(f"field id {field['id']} is invalid or reserved")
        if field["id"] in ids:
            errors.append(f"field IDs must be unique ({field['id']})")
        ids.append(field["id"])
        ftype = field.get("type", "string")
        if ftype not in ("string", "boolean"):
            errors.append(f"field {field['id']}: type {ftype}")
        if field.get("format") not in (None, "ssh_private_key", "url"):
            errors.append(f"field {field['id']}: format {field['format']}")
        for key in ("choices", "multiline", "format", "secret"):
            if key in field and ftype != "string":
                errors.append(f"{key} not allowed for {ftype} type ({field['id']})")
        for key in ("multiline", "secret", "ask_at_runtime"):
            if key in field and not isinstance(field[key], bool):
                errors.append(f"field {field['id']}: {key} must be a boolean")
    for req in inputs.get("required", []):
        if req not in ids:
            errors.append(f"required names an unknown field {req}")
    injectors = ct.get("injectors") or {}
    if set(injectors) - {"file", "env", "extra_vars"}:
        errors.append(f"unknown injector kinds {sorted(set(injectors) - {'file', 'env', 'extra_vars'})}")
    files = list((injectors.get("file") or {}).keys())
    for key in files:
        if not FILE_KEY.match(key):
            errors.append(f"file injector key {key}")
    if "template" in files and len(files) > 1:
        errors.append("must use multi-file syntax when injecting multiple files")
    for var, value in (injectors.get("env") or {}).items():
        if not NAME.match(var) or var.startswith("ANSIBLE_") or var in ENV_BLOCKLIST:
            errors.append(f"environment variable {var} is not allowed in credentials")
        if not isinstance(value, str) or not value.isascii():
            errors.append(f"env {var}: the value must be an ASCII string")
    for var, value in (injectors.get("extra_vars") or {}).items():
        if not NAME.match(var) or not isinstance(value, str):
            errors.append(f"extra var {var} invalid")
    return errors


def inject(ct: dict, values: dict[str, str], private_data_dir: Path) -> tuple[dict[str, str], dict[str, Path]]:
    """Render the injectors as the controller does; returns (env, files)."""
    env_jinja = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    namespace: dict = {f["id"]: values.get(f["id"], "") for f in ct["inputs"]["fields"]}

    class Filenames:
        pass

    class Tower:
        filename = Filenames()

    namespace["tower"] = Tower()
    files: dict[str, Path] = {}
    # paths first (every file's path can be referenced by every template), then contents
    for key in ct["injectors"].get("file", {}):
        name = key.split(".", 1)[1]
        fd = os.open(private_data_dir / f"tmp_{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        files[name] = private_data_dir / f"tmp_{name}"
        setattr(Tower.filename, name, str(files[name]))
    for key, template in ct["injectors"].get("file", {}).items():
        files[key.split(".", 1)[1]].write_text(env_jinja.from_string(template).render(namespace))
    env = {var: env_jinja.from_string(tmpl).render(namespace) for var, tmpl in ct["injectors"].get("env", {}).items()}
    return env, files


def pem_key(passphrase: str = "") -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    algorithm = serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algorithm).decode()


VALUES = {
    "user": "ocid1.user.oc1..aaaaaaaaexampleuser",
    "tenancy": "ocid1.tenancy.oc1..aaaaaaaaexampletenancy",
    "fingerprint": "20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34",
    "region": "eu-frankfurt-1",
}


def test_structure_follows_the_controller_rules():
    ct = credential_type()
    assert structure_errors(ct) == []
    fields = {f["id"]: f for f in ct["inputs"]["fields"]}
    assert set(fields) == {"user", "tenancy", "fingerprint", "private_key", "passphrase", "region"}
    assert fields["private_key"]["secret"] is True and fields["private_key"]["multiline"] is True
    assert fields["private_key"]["format"] == "ssh_private_key"
    assert fields["passphrase"]["secret"] is True
    assert not any(fields[f].get("secret") for f in ("user", "tenancy", "fingerprint", "region"))
    assert set(ct["inputs"]["required"]) == {"user", "tenancy", "fingerprint", "private_key", "region"}
    assert set(ct["injectors"]["file"]) == {"template.config", "template.key"}
    assert ct["injectors"]["env"] == {"OCI_CONFIG_FILE": "{{ tower.filename.config }}",
                                      "OCI_CLI_CONFIG_FILE": "{{ tower.filename.config }}"}


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda ct: ct.update(kind="kubernetes"), "kind of a custom credential type"),
    (lambda ct: ct["inputs"]["fields"].append({"id": "user", "label": "again"}), "field IDs must be unique"),
    (lambda ct: ct["inputs"]["required"].append("token"), "required names an unknown field token"),
    (lambda ct: ct["inputs"]["fields"][0].update(type="boolean", secret=True), "secret not allowed for boolean"),
    (lambda ct: ct["injectors"]["env"].update(ANSIBLE_CONFIG="x"), "ANSIBLE_CONFIG is not allowed"),
    (lambda ct: ct["injectors"]["env"].update(PATH="x"), "PATH is not allowed"),
    (lambda ct: ct["injectors"]["file"].update(template="x"), "multi-file syntax"),
])
def test_the_rules_catch_broken_types(mutate, message):
    ct = credential_type()
    mutate(ct)
    assert any(message in e for e in structure_errors(ct)), structure_errors(ct)


def test_templates_reference_only_the_inputs_and_their_files(tmp_path):
    """Rendering with StrictUndefined fails on any name that is not an input or tower.filename.*."""
    ct = credential_type()
    env, files = inject(ct, {**VALUES, "private_key": "k", "passphrase": ""}, tmp_path)
    assert set(files) == {"config", "key"}
    ct["injectors"]["env"]["OCI_X"] = "{{ tower.filename.nope }}"
    (tmp_path / "again").mkdir()
    with pytest.raises(Exception, match="nope"):
        inject(ct, {**VALUES, "private_key": "k"}, tmp_path / "again")


@pytest.mark.parametrize("passphrase", ["", "s3cret pass"])
def test_injected_files_are_what_the_oci_sdk_and_prereqs_read(tmp_path, passphrase):
    ct = credential_type()
    key = pem_key(passphrase)
    env, files = inject(ct, {**VALUES, "private_key": key, "passphrase": passphrase}, tmp_path)
    assert env["OCI_CONFIG_FILE"] == env["OCI_CLI_CONFIG_FILE"] == str(files["config"])
    for path in files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = oci.config.from_file(env["OCI_CONFIG_FILE"])
    oci.config.validate_config(config)
    assert {k: config[k] for k in VALUES} == VALUES
    assert config["key_file"] == str(files["key"])
    assert config.get("pass_phrase") == (passphrase or None)
    assert ("pass_phrase=" in files["config"].read_text()) == bool(passphrase)
    loaded = oci.signer.load_private_key_from_file(config["key_file"], config.get("pass_phrase"))
    assert loaded.key_size == 2048
    oci.signer.Signer(config["tenancy"], config["user"], config["fingerprint"], config["key_file"],
                      pass_phrase=config.get("pass_phrase"))


def test_prereqs_reads_the_injected_config_by_default():
    defaults = yaml.safe_load((ROOT / "roles/prereqs/defaults/main.yml").read_text())
    assert defaults["prereqs_oci_config_file"] == "{{ lookup('ansible.builtin.env', 'OCI_CONFIG_FILE') }}"
    spec = yaml.safe_load((ROOT / "roles/prereqs/meta/argument_specs.yml").read_text())
    assert spec["argument_specs"]["main"]["options"]["prereqs_oci_config_file"]["default"] == defaults["prereqs_oci_config_file"]
