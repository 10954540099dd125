"""Each role's public variables: defaults/main.yml and meta/argument_specs.yml name the same
variables, every variable carries the role prefix, and each default has a comment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ["prereqs", "istio", "addons", "bookinfo", "gateway"]
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
