"""scripts/survey_spec.py: AWX / Automation Controller survey specs from the roles' argument specs.

The field rules below are written from AWX's survey spec validation (the job template survey_spec
endpoint) and its documentation: name/description strings, a non-empty spec list; each question
a dict with string question_name / variable / type, a boolean required, a type among the allowed
ones, a default of the type's Python type, integer min/max, choices for (multi)select questions
(a list or a newline-separated string) holding the default(s), one default for multiplechoice,
unique variables, no "$encrypted$" default outside password questions.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "survey_spec.py"
SURVEY = ROOT / "awx" / "site-survey.json"
SELECT = ROOT / "awx" / "site-survey.select.yml"

_spec = importlib.util.spec_from_file_location("survey_spec", SCRIPT)
survey_spec = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(survey_spec)

ALLOWED_TYPES = {
    "text": (str,), "textarea": (str,), "password": (str,), "multiplechoice": (str,), "multiselect": (str,),
    "integer": (int,), "float": (float, int),
}
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def survey_errors(survey: object) -> list[str]:
    """Every rule a survey spec breaks (empty = the controller accepts it)."""
    if not isinstance(survey, dict):
        return ["the survey spec is not an object"]
    errors = []
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if field not in survey:
            errors.append(f"field {field!r} is missing")
        elif not isinstance(survey[field], kind):
            errors.append(f"field {field!r} must be a {kind.__name__}")
    spec = survey.get("spec")
    if not isinstance(spec, list):
        return errors
    if not spec:
        errors.append("'spec' has no questions")
    seen: set[str] = set()
    for idx, q in enumerate(spec):
        where = f"question {idx}"
        if not isinstance(q, dict):
            errors.append(f"{where} is not an object")
            continue
        for field in ("type", "question_name", "variable"):
            if not isinstance(q.get(field), str):
                errors.append(f"{where}: {field!r} missing or not a string")
        if not isinstance(q.get("required"), bool):
            errors.append(f"{where}: 'required' missing or not a boolean")
        var = q.get("variable")
        if isinstance(var, str):
            if not VARIABLE.match(var):
                errors.append(f"{where}: variable {var!r} is not a valid variable name")
            if var in seen:
                errors.append(f"{where}: variable {var!r} duplicated")
            seen.add(var)
        qtype = q.get("type")
        if qtype not in ALLOWED_TYPES:
            errors.append(f"{where}: type {qtype!r} not one of {', '.join(ALLOWED_TYPES)}")
            continue
        default = q.get("default", "")
        if default != "" and (not isinstance(default, ALLOWED_TYPES[qtype]) or isinstance(default, bool)):
            errors.append(f"{where}: default {default!r} must be {ALLOWED_TYPES[qtype][0].__name__}")
        for key in ("min", "max"):
            if q.get(key) is not None and (not isinstance(q[key], int) or isinstance(q[key], bool)):
                errors.append(f"{where}: {key} must be an integer")
        lo, hi = q.get("min"), q.get("max")
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            errors.append(f"{where}: min {lo} > max {hi}")
        if qtype in ("integer", "float") and isinstance(default, (int, float)) and default != "":
            if (isinstance(lo, int) and default < lo) or (isinstance(hi, int) and default > hi):
                errors.append(f"{where}: default {default} outside [{lo}, {hi}]")
        if qtype in ("text", "textarea") and isinstance(default, str) and default:
            if (isinstance(lo, int) and len(default) < lo) or (isinstance(hi, int) and len(default) > hi):
                errors.append(f"{where}: default {default!r} length outside [{lo}, {hi}]")
        if qtype in ("multiplechoice", "multiselect"):
            choices = q.get("choices")
            if isinstance(choices, str):
                choices = [c for c in choices.splitlines() if c.strip()]
            if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
                errors.append(f"{where}: type {qtype} needs choices (a list of strings or a newline-separated string)")
                continue
            if len(set(choices)) != len(choices):
                errors.append(f"{where}: duplicate choices")
            defaults = [d for d in default.splitlines() if d.strip()] if isinstance(default, str) else []
            if qtype == "multiplechoice" and len(defaults) > 1:
                errors.append(f"{where}: multiplechoice takes one default")
            if any(d not in choices for d in defaults):
                errors.append(f"{where}: default {default!r} not among the choices")
        if isinstance(default, str) and default.startswith("$encrypted$") and qtype != "password":
            errors.append(f"{where}: $encrypted$ is reserved for password defaults")
    return errors


def test_committed_survey_obeys_the_field_rules():
    survey = json.loads(SURVEY.read_text())
    assert survey_errors(survey) == []
    assert survey["name"] == "okemesh.istio site"
    assert len(survey["spec"]) >= 10


def test_committed_survey_is_what_the_argument_specs_give():
    """Regenerating it gives the same bytes: the survey follows every argument spec change."""
    generated = subprocess.run([sys.executable, str(SCRIPT), "--select", str(SELECT)], capture_output=True, text=True,
                               check=True).stdout
    assert generated == SURVEY.read_text()
    check = subprocess.run([sys.executable, str(SCRIPT), "--select", str(SELECT), "--check", str(SURVEY)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def test_committed_survey_asks_for_the_most_used_variables():
    survey = {q["variable"]: q for q in json.loads(SURVEY.read_text())["spec"]}
    assert set(survey) >= {"prereqs_cluster_id", "prereqs_oci_region", "istio_version", "istio_profile", "istio_revision",
                           "bookinfo_namespace", "bookinfo_traffic_profile", "gateway_oci_lb_type",
                           "gateway_oci_lb_flex_min", "gateway_oci_lb_flex_max", "prereqs_cluster_admin_binding",
                           "bookinfo_loadgen_requests"}
    options = survey_spec.load_options()
    for var, q in survey.items():
        opt = options[var]
        if "choices" in opt and opt.get("type") != "bool":
            assert set(q["choices"]) == {str(c) for c in opt["choices"]} - {""}, var
    assert survey["istio_profile"]["type"] == "multiplechoice" and survey["istio_profile"]["default"] == "default"
    assert survey["bookinfo_loadgen_requests"] == {**survey["bookinfo_loadgen_requests"], "type": "integer", "default": 100,
                                                   "min": 0, "max": 100000}
    assert survey["prereqs_cluster_admin_binding"]["choices"] == ["true", "false"]
    assert survey["prereqs_cluster_admin_binding"]["default"] == "false"
    # "" means unset: no empty default and no empty choice, so an unanswered question leaves host vars alone
    assert "default" not in survey["prereqs_cluster_id"] and "default" not in survey["gateway_oci_lb_type"]
    assert survey["gateway_oci_lb_type"]["choices"] == ["lb", "nlb"]


OPTIONS = {
    "r_name": {"type": "str", "default": "x", "description": "A name."},
    "r_path": {"type": "path", "default": "{{ other }}", "description": ["Two", "lines."]},
    "r_secret": {"type": "str", "no_log": True, "default": "", "required": True, "description": "A secret."},
    "r_count": {"type": "int", "default": 3, "description": "Count.", "min": 1, "max": 9},
    "r_ratio": {"type": "float", "default": 0.5, "description": "Ratio."},
    "r_flag": {"type": "bool", "default": True, "description": "Flag."},
    "r_mode": {"type": "str", "choices": ["", "a", "b"], "default": "", "description": "Mode."},
    "r_level": {"type": "int", "choices": [1, 2], "default": 2, "description": "Level."},
    "r_tags": {"type": "list", "elements": "str", "choices": ["x", "y", "z"], "default": ["x", "z"], "description": "Tags."},
    "r_list": {"type": "list", "elements": "str", "default": [], "description": "A list."},
    "r_map": {"type": "dict", "default": {}, "description": "A map."},
}


def test_type_mapping():
    q = {name: survey_spec.question(name, opt) for name, opt in OPTIONS.items() if name not in ("r_list", "r_map")}
    assert q["r_name"] == {"question_name": "r_name", "question_description": "A name.", "variable": "r_name",
                           "required": False, "type": "text", "default": "x"}
    assert q["r_path"]["type"] == "text" and "default" not in q["r_path"]  # templated default: the role computes it
    assert q["r_path"]["question_description"] == "Two lines."
    assert q["r_secret"]["type"] == "password" and q["r_secret"]["required"] is True and "default" not in q["r_secret"]
    assert (q["r_count"]["type"], q["r_count"]["default"], q["r_count"]["min"], q["r_count"]["max"]) == ("integer", 3, 1, 9)
    assert (q["r_ratio"]["type"], q["r_ratio"]["default"]) == ("float", 0.5)
    assert (q["r_flag"]["type"], q["r_flag"]["choices"], q["r_flag"]["default"]) == ("multiplechoice", ["true", "false"], "true")
    assert (q["r_mode"]["type"], q["r_mode"]["choices"]) == ("multiplechoice", ["a", "b"]) and "default" not in q["r_mode"]
    assert (q["r_level"]["choices"], q["r_level"]["default"]) == (["1", "2"], "2")
    assert (q["r_tags"]["type"], q["r_tags"]["choices"], q["r_tags"]["default"]) == ("multiselect", ["x", "y", "z"], "x\nz")
    survey = survey_spec.build({"name": "n", "description": "d", "questions": list(q)}, OPTIONS)
    assert survey_errors(survey) == []


def test_overrides_and_refusals_name_the_variable():
    q = survey_spec.question("r_name", OPTIONS["r_name"], {"question_name": "Name?", "min": 1, "max": 20, "required": True})
    assert (q["question_name"], q["min"], q["max"], q["required"]) == ("Name?", 1, 20, True)
    for name, match in (("r_list", "r_list: a list without choices"), ("r_map", "r_map: type dict")):
        with pytest.raises(survey_spec.SurveyError, match=match):
            survey_spec.question(name, OPTIONS[name])
    with pytest.raises(survey_spec.SurveyError, match="r_name: min must be an integer"):
        survey_spec.question("r_name", OPTIONS["r_name"], {"min": "1"})
    with pytest.raises(survey_spec.SurveyError, match="r_name: unknown question settings"):
        survey_spec.question("r_name", OPTIONS["r_name"], {"colour": "red"})
    with pytest.raises(survey_spec.SurveyError, match="nope: no role's meta/argument_specs.yml defines it"):
        survey_spec.build({"questions": ["nope"]}, OPTIONS)
    with pytest.raises(survey_spec.SurveyError, match="variables asked twice: r_name"):
        survey_spec.build({"questions": ["r_name", "r_name"]}, OPTIONS)


def test_cli_writes_atomically_and_reports_bad_selections(tmp_path):
    out = tmp_path / "s.json"
    ok = subprocess.run([sys.executable, str(SCRIPT), "istio_version", "istio_profile", "-o", str(out)],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert [q["variable"] for q in json.loads(out.read_text())["spec"]] == ["istio_version", "istio_profile"]
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]
    bad = subprocess.run([sys.executable, str(SCRIPT), "istio_revision_tags", "-o", str(tmp_path / "bad.json")],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "istio_revision_tags" in bad.stderr
    assert not (tmp_path / "bad.json").exists()
    stale = tmp_path / "stale.json"
    outdated = json.loads(out.read_text())
    outdated["spec"][0]["question_description"] = "an older description"
    stale.write_text(json.dumps(outdated, indent=2) + "\n")
    check = subprocess.run([sys.executable, str(SCRIPT), "istio_version", "istio_profile", "--check", str(stale)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 1 and "regenerate" in check.stderr


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s: s.pop("name"), "field 'name' is missing"),
    (lambda s: s.update(spec=[]), "'spec' has no questions"),
    (lambda s: s["spec"][0].update(type="dropdown"), "type 'dropdown' not one of"),
    (lambda s: s["spec"][0].update(required="yes"), "'required' missing or not a boolean"),
    (lambda s: s["spec"][1].update(variable=s["spec"][0]["variable"]), "duplicated"),
    (lambda s: s["spec"][3].update(default="sidecar"), "not among the choices"),
    (lambda s: s["spec"][3].pop("choices"), "needs choices"),
    (lambda s: s["spec"][3].update(default="default\nambient"), "multiplechoice takes one default"),
    (lambda s: s["spec"][8].update(default="10"), "default '10' must be int"),
    (lambda s: s["spec"][8].update(min="0"), "min must be an integer"),
    (lambda s: s["spec"][8].update(default=200000), "outside [0, 100000]"),
    (lambda s: s["spec"][2].update(default="$encrypted$abc"), "$encrypted$ is reserved"),
    (lambda s: s["spec"][2].update(variable="istio-version"), "not a valid variable name"),
])
def test_the_rules_catch_broken_surveys(mutate, message):
    survey = json.loads(SURVEY.read_text())
    assert [q["variable"] for q in survey["spec"]][2:4] + [survey["spec"][8]["variable"]] == [
        "istio_version", "istio_profile", "bookinfo_loadgen_requests"]
    mutate(survey)
    assert any(message in e for e in survey_errors(survey)), survey_errors(survey)
