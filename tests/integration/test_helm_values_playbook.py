"""helm_values through the real ansible-playbook: argument passing, templated types, check/diff, idempotence."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.integration.conftest import run_playbook

FIXTURES = Path(__file__).resolve().parents[4] / "fixtures" / "values"
CLASSIC = (FIXTURES / "classic-istio-values.yaml").read_text()

PLAYBOOK = """
- name: Edit the classic values and write an override file
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Enable the add-ons in the chart's values.yaml
      okemesh.istio.helm_values:
        path: "{{ values_path }}"
        set:
          grafana.enabled: true
          prometheus.enabled: true
          servicegraph.enabled: true
          tracing.enabled: "{{ enable_tracing }}"  # a templated boolean must stay a boolean
      register: __edit

    - name: Write overrides for istiod
      okemesh.istio.helm_values:
        path: "{{ override_path }}"
        mode: "0600"
        set:
          global.tag: "{{ istio_tag }}"
          pilot.autoscaleEnabled: "{{ autoscale }}"
          meshConfig.defaultConfig.proxyMetadata: {}
          pilot.podAnnotations:
            prometheus.io/scrape: "true"
"""


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_playbook_check_then_apply_then_idempotent(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(CLASSIC)
    override = tmp_path / "overrides.yaml"
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    extra = {
        "values_path": str(values),
        "override_path": str(override),
        "enable_tracing": True,
        "istio_tag": "1.27",  # a string that looks like a number: must stay a string
        "autoscale": False,
    }

    checked = run_playbook(playbook, extra_vars=extra, check=True, diff=True)
    assert checked.rc == 0, str(checked)
    assert checked.changed() == 2
    assert values.read_text() == CLASSIC and not override.exists()
    assert "+  enabled: true" in checked.stdout and "-  enabled: false" in checked.stdout

    applied = run_playbook(playbook, extra_vars=extra)
    assert applied.rc == 0, str(applied)
    assert applied.changed() == 2
    lines = CLASSIC.split("\n")
    for section in ("grafana:", "servicegraph:", "tracing:"):
        lines[lines.index("  enabled: false", lines.index(section))] = "  enabled: true"
    assert values.read_text() == "\n".join(lines)
    assert override.read_text() == (
        'global:\n  tag: "1.27"\npilot:\n  autoscaleEnabled: false\n  podAnnotations:\n    prometheus.io/scrape: "true"\n'
        "meshConfig:\n  defaultConfig:\n    proxyMetadata: {}\n"
    )
    assert oct(override.stat().st_mode & 0o777) == "0o600"

    before = (sha(values), sha(override))
    again = run_playbook(playbook, extra_vars=extra)
    assert again.rc == 0, str(again)
    assert again.changed() == 0
    assert (sha(values), sha(override)) == before
