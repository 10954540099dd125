"""helm_values through the real ansible-playbook (no simulator needed).

* argument passing, templated types, check/diff mode and idempotence on the classic values;
* concurrency (issue 14): ten inventory hosts edit one file at once with ``-f 10``, one key
  each, and all ten keys land; a second run changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.support import PlaybookResult, run_playbook

REPO = Path(__file__).resolve().parents[2]
CLASSIC = (REPO / "tests" / "fixtures" / "values" / "classic-istio-values.yaml").read_text()


def ansible_playbook(tmp_path: Path, playbook: Path, *, inventory: Path | None = None, **kw) -> PlaybookResult:
    """The support layer's runner, with this test's own local temp (the test checks what tmp_path holds)."""
    return run_playbook(playbook, inventory=inventory, env={"ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp")}, **kw)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


PLAYBOOK = """
- name: Edit the classic values and write an override file
  hosts: localhost
  connection: local
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


@pytest.mark.slow
def test_playbook_check_then_apply_then_idempotent(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(CLASSIC)
    override = tmp_path / "overrides.yaml"
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    extra = tmp_path / "vars.json"
    extra.write_text(
        json.dumps(
            {
                "values_path": str(values),
                "override_path": str(override),
                "enable_tracing": True,
                "istio_tag": "1.27",  # a string that looks like a number: must stay a string
                "autoscale": False,
            }
        )
    )
    base = {"args": ["-e", f"@{extra}"]}

    checked = ansible_playbook(tmp_path, playbook, check=True, diff=True, **base)
    assert checked.rc == 0, str(checked)
    assert checked.changed() == 2
    assert values.read_text() == CLASSIC and not override.exists()
    assert "+  enabled: true" in checked.stdout and "-  enabled: false" in checked.stdout

    applied = ansible_playbook(tmp_path, playbook, **base)
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
    again = ansible_playbook(tmp_path, playbook, **base)
    assert again.rc == 0, str(again)
    assert again.changed() == 0
    assert (sha(values), sha(override)) == before


CONCURRENT = """
- name: Ten hosts edit one values file at the same time
  hosts: editors
  gather_facts: false
  tasks:
    - name: Each host enables its own key
      okemesh.istio.helm_values:
        path: "{{ values_path }}"
        set:
          - path: [editors, "{{ inventory_hostname }}", enabled]
            value: true
        # widens the window between read and replace, so an unlocked edit would be lost
        validate: "{{ ansible_playbook_python }} -c 'import time; time.sleep(0.2)' %s"
"""


@pytest.mark.slow
def test_ten_hosts_with_forks_10_all_land(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(CLASSIC)
    hosts = [f"editor{i}" for i in range(10)]
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[editors]\n" + "\n".join(hosts) + f"\n\n[editors:vars]\nansible_connection=local\nansible_python_interpreter={sys.executable}\n")
    playbook = tmp_path / "concurrent.yml"
    playbook.write_text(CONCURRENT)
    run = {"inventory": inventory, "extra_vars": {"values_path": str(values)}, "args": ["-f", "10"]}

    first = ansible_playbook(tmp_path, playbook, **run)
    assert first.rc == 0, str(first)
    assert {host: first.changed(host) for host in hosts} == dict.fromkeys(hosts, 1)
    text = values.read_text()
    assert text.startswith(CLASSIC)  # the file's own lines untouched, the new keys appended
    data = YAML(typ="safe", pure=True).load(text)
    assert data["editors"] == {host: {"enabled": True} for host in hosts}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["values.yaml", "inventory.ini", "concurrent.yml", "ansible-tmp"])

    again = ansible_playbook(tmp_path, playbook, **run)
    assert again.rc == 0, str(again)
    assert {host: again.changed(host) for host in hosts} == dict.fromkeys(hosts, 0)
    assert values.read_text() == text
