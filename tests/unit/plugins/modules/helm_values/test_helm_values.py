"""okemesh.istio.helm_values, run through its main() on real files (no mocks)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from tests.support.modules import on_target
from ruamel.yaml import YAML

from ansible_collections.okemesh.istio.plugins.modules import helm_values

FIXTURES = Path(__file__).resolve().parents[4] / "fixtures" / "values"
CLASSIC = (FIXTURES / "classic-istio-values.yaml").read_text()
MODERN = (FIXTURES / "modern-istiod-values.yaml").read_text()
ADDONS = {"grafana.enabled": True, "prometheus.enabled": True, "servicegraph.enabled": True, "tracing.enabled": True}


def run(capsys, **args):
    """Run the module; return (result dict, failed flag)."""
    with on_target(), patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        helm_values.main()
    result = json.loads(capsys.readouterr().out)
    return result, exit_info.value.code != 0


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def classic_enabled(text: str) -> str:
    """The classic fixture with grafana/servicegraph/tracing enabled (prometheus already is)."""
    lines = text.split("\n")
    for section in ("grafana:", "servicegraph:", "tracing:"):
        idx = lines.index("  enabled: false", lines.index(section))
        lines[idx] = "  enabled: true"
    return "\n".join(lines)


@pytest.fixture
def classic(tmp_path):
    path = tmp_path / "istio" / "values.yaml"
    path.parent.mkdir()
    path.write_text(CLASSIC)
    return path


def test_edit_in_place_then_idempotent(capsys, classic):
    result, failed = run(capsys, path=str(classic), set=ADDONS)
    assert not failed and result["changed"] is True
    assert classic.read_text() == classic_enabled(CLASSIC)
    assert result["rendering"] == "splice"
    assert [c["path"] for c in result["changes"]] == ["grafana.enabled", "servicegraph.enabled", "tracing.enabled"]
    assert "diff" not in result

    inode, mtime = classic.stat().st_ino, classic.stat().st_mtime_ns
    again, failed = run(capsys, path=str(classic), set=ADDONS)
    assert not failed and again["changed"] is False and again["changes"] == []
    assert (classic.stat().st_ino, classic.stat().st_mtime_ns) == (inode, mtime)  # not rewritten


def test_write_is_atomic_rename_and_keeps_mode(capsys, classic):
    classic.chmod(0o640)
    inode = classic.stat().st_ino
    result, failed = run(capsys, path=str(classic), set={"grafana.enabled": True})
    assert not failed and result["changed"]
    assert classic.stat().st_ino != inode  # replaced by rename of a temporary file, not rewritten in place
    assert stat.S_IMODE(classic.stat().st_mode) == 0o640
    assert sorted(p.name for p in classic.parent.iterdir()) == ["values.yaml"]  # no temporary left behind


def test_check_mode_predicts_and_does_not_write(capsys, classic):
    before = sha(classic)
    result, failed = run(capsys, path=str(classic), set=ADDONS, _ansible_check_mode=True, _ansible_diff=True)
    assert not failed and result["changed"] is True
    assert sha(classic) == before
    assert result["diff"]["before"] == CLASSIC
    assert result["diff"]["after"] == classic_enabled(CLASSIC)


def test_check_mode_new_file_is_not_created(capsys, tmp_path):
    target = tmp_path / "overrides.yaml"
    result, failed = run(capsys, path=str(target), set={"a.b": 1}, mode="0600", _ansible_check_mode=True)
    assert not failed and result["changed"] is True
    assert not target.exists()


def test_diff_mode_and_type_change_report(capsys, classic):
    result, failed = run(capsys, path=str(classic), set={"grafana.enabled": "true"}, _ansible_diff=True)
    assert not failed
    assert result["changes"] == [{"path": "grafana.enabled", "action": "update", "before": False, "after": "true", "before_type": "bool", "after_type": "str"}]
    after_lines = result["diff"]["after"].split("\n")
    assert after_lines[after_lines.index("grafana:") + 1] == '  enabled: "true"'
    assert result["diff"]["before_header"] == str(classic)


def test_backup_on_change_only(capsys, classic):
    result, failed = run(capsys, path=str(classic), set={"tracing.enabled": True}, backup=True)
    assert not failed and result["changed"]
    backup = Path(result["backup_file"])
    assert backup.parent == classic.parent and backup.read_text() == CLASSIC
    again, _out = run(capsys, path=str(classic), set={"tracing.enabled": True}, backup=True)
    assert "backup_file" not in again
    assert len(list(classic.parent.iterdir())) == 2


def test_validate_success_and_failure(capsys, classic):
    checker = f"{sys.executable} -c \"import sys,yaml; d=yaml.safe_load(open(sys.argv[1])); sys.exit(0 if d['grafana']['enabled'] is True else 3)\" %s"
    result, failed = run(capsys, path=str(classic), set={"grafana.enabled": "yes"}, validate=checker)
    # "yes" is written quoted, so even a YAML 1.1 reader sees a string -> the checker refuses it
    assert failed and result["rc"] == 3
    assert "validate command failed" in result["msg"] and str(classic) in result["msg"]
    assert classic.read_text() == CLASSIC
    assert sorted(p.name for p in classic.parent.iterdir()) == ["values.yaml"]

    result, failed = run(capsys, path=str(classic), set={"grafana.enabled": True}, validate=checker)
    assert not failed and result["changed"]
    assert "  enabled: true" in classic.read_text().split("grafana:")[1].split("\n")[1]


def test_validate_needs_percent_s(capsys, classic):
    before = sha(classic)
    result, failed = run(capsys, path=str(classic), set={"grafana.enabled": True}, validate="true")
    assert failed and "must contain %s" in result["msg"]
    assert sha(classic) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"set": {"grafana.enabled.x": 1}}, "Values path 'grafana.enabled.x' crosses a scalar"),
        ({"set": {"gateways.istio-egressgateway.ports[7].port": 1}}, "list index 7 is out of range at 'gateways.istio-egressgateway.ports'"),
        ({"set": {"grafana.sidecar.enabled": True}, "create": False}, "'grafana.sidecar' does not exist and create is false"),
        ({"set": {"a..b": 1}}, "Invalid values path 'a..b'"),
        ({"set": [{"path": "a"}]}, "set[0] must be a mapping"),
        ({"set": {"a": 1}, "document": 2}, "document index 2 does not exist"),
    ],
)
def test_bad_input_fails_and_leaves_the_file_unchanged(capsys, classic, args, message):
    before = sha(classic)
    result, failed = run(capsys, path=str(classic), **args)
    assert failed
    assert message in result["msg"]
    assert sha(classic) == before


def test_missing_file_without_create(capsys, tmp_path):
    target = tmp_path / "nope" / "values.yaml"
    result, failed = run(capsys, path=str(target), set={"a": 1}, create=False)
    assert failed and result["msg"] == f"Values file {target} does not exist (set create=true to create it)."
    result, failed = run(capsys, path=str(target), set={"a": 1})
    assert failed and "directory" in result["msg"] and str(target.parent) in result["msg"]
    assert not target.parent.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"grafana: [enabled\nprometheus: }\n", "is not valid YAML"),
        (b"\xff\xfe\x00binary", "is not UTF-8 text (an invalid byte at line 1, column 1)"),
        (b"- a\n- b\n", "is a list, not a mapping"),
        (b"a: 1\n---\nb: 2\n", "holds 2 YAML documents; set document"),
    ],
)
def test_bad_files_fail_and_stay_byte_identical(capsys, tmp_path, content, message):
    target = tmp_path / "values.yaml"
    target.write_bytes(content)
    result, failed = run(capsys, path=str(target), set={"a": 3})
    assert failed and message in result["msg"] and str(target) in result["msg"]
    assert target.read_bytes() == content


def test_override_file_created_private_with_nested_structures(capsys, tmp_path):
    target = tmp_path / "work" / "istiod-overrides.yaml"
    target.parent.mkdir()
    args = dict(
        path=str(target),
        mode="0600",
        set={
            "global.hub": "registry.example.com/istio",
            "global.tag": "1.27.1",
            "pilot.resources": {"requests": {"cpu": "500m", "memory": "2Gi"}},
            "meshConfig.defaultConfig.proxyMetadata": {},
            "meshConfig.extensionProviders": [{"name": "otel", "opentelemetry": {"port": 4317, "service": "otel.observability"}}],
        },
    )
    result, failed = run(capsys, **args)
    assert not failed and result["changed"] is True
    assert [c["action"] for c in result["changes"]] == ["create"] * 5
    assert target.read_text() == (
        "global:\n"
        "  hub: registry.example.com/istio\n"
        "  tag: 1.27.1\n"
        "pilot:\n"
        "  resources:\n"
        "    requests:\n"
        "      cpu: 500m\n"
        "      memory: 2Gi\n"
        "meshConfig:\n"
        "  defaultConfig:\n"
        "    proxyMetadata: {}\n"
        "  extensionProviders:\n"
        "    - name: otel\n"
        "      opentelemetry:\n"
        "        port: 4317\n"
        "        service: otel.observability\n"
    )
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    again, failed = run(capsys, **args)
    assert not failed and again["changed"] is False


def test_mode_change_alone_reports_changed(capsys, classic):
    classic.chmod(0o644)
    result, failed = run(capsys, path=str(classic), set={"prometheus.enabled": True}, mode="0600")
    assert not failed and result["changed"] is True and result["changes"] == []
    assert stat.S_IMODE(classic.stat().st_mode) == 0o600
    assert classic.read_text() == CLASSIC


def test_unset_and_keys_with_dots_on_modern_layout(capsys, tmp_path):
    target = tmp_path / "values.yaml"
    target.write_text(MODERN)
    result, failed = run(
        capsys,
        path=str(target),
        set=[{"path": ["_internal_defaults_do_not_set", "podAnnotations", "prometheus.io/scrape"], "value": "true"}],
        unset=["_internal_defaults_do_not_set.experimental"],
        _ansible_diff=True,
    )
    assert not failed and result["changed"]
    expected = MODERN.replace("  podAnnotations: {}\n", '  podAnnotations:\n    prometheus.io/scrape: "true"\n')
    expected = expected.replace("  experimental:\n    stableValidationPolicy: false\n", "")
    assert target.read_text() == expected
    data = YAML(typ="safe", pure=True).load(target.read_text())
    assert data["_internal_defaults_do_not_set"]["podAnnotations"] == {"prometheus.io/scrape": "true"}


def test_multi_document_with_index(capsys, tmp_path):
    target = tmp_path / "multi.yaml"
    target.write_text("a: 1\n---\nb:\n  c: false\n")
    result, failed = run(capsys, path=str(target), set={"b.c": True}, document=1)
    assert not failed and result["changed"]
    assert target.read_text() == "a: 1\n---\nb:\n  c: true\n"


def test_dest_alias_and_unchanged_file_keeps_inode(capsys, classic):
    os.utime(classic, (1, 1))
    result, failed = run(capsys, dest=str(classic), set={"prometheus.enabled": True})
    assert not failed and result["changed"] is False and result["rendering"] == "none"
    assert classic.stat().st_mtime == 1


def test_new_file_without_values_is_written_as_empty_mapping(capsys, tmp_path):
    target = tmp_path / "empty-overrides.yaml"
    result, failed = run(capsys, path=str(target))
    assert not failed and result["changed"] is True and target.read_text() == "{}\n"
    again, failed = run(capsys, path=str(target))
    assert not failed and again["changed"] is False


def test_symlinked_values_file_is_edited_through_the_link(capsys, classic):
    link = classic.parent / "link.yaml"
    link.symlink_to(classic.name)
    result, failed = run(capsys, path=str(link), set={"grafana.enabled": True})
    assert not failed and result["changed"]
    assert link.is_symlink()
    assert classic.read_text().split("grafana:\n")[1].startswith("  enabled: true\n")
